"""SemDeDup of the images validation kept, over DIR/embed: k-means clusters, then near-duplicates removed
within each, at one or more eps or at the eps --eps auto measures as safe for this embedder."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_dedup_options], commands.dedup_command)
