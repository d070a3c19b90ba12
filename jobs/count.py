"""Count samples per vocabulary entry from DIR/matches into DIR/entry_counts."""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_metadata_options], jobs.count_command)
