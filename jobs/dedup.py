"""SemDeDup over DIR/embed: k-means clusters, then near-duplicates removed within each, for one or more eps."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_dedup_options], commands.dedup_command)
