"""SemDeDup over DIR/embed: k-means clusters, then near-duplicates removed within each, for one or more eps."""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_dedup_options], jobs.dedup_command)
