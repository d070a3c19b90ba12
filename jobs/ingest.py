"""Ingest a pool into DIR/ingest: validate rows, give uids, drop exact duplicates."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_pool_options], commands.ingest_command)
