"""Ingest a pool into DIR/ingest: validate rows, give uids, drop exact duplicates."""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_pool_options], jobs.ingest_command)
