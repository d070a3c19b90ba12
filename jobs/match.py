"""Match DIR/ingest captions against the vocabulary into DIR/matches."""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_metadata_options], jobs.match_command)
