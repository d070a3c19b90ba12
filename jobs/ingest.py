"""Ingest a pool into DIR/ingest: validate rows, give uids, drop exact duplicates."""

import argparse

from pipeline import cli
from pipeline.spark import jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    cli.add_pool_options(parser)
    cli.add_run_options(parser, "run directory")
    args = parser.parse_args()
    cli.run_job(lambda: jobs.ingest_command(args))


if __name__ == "__main__":
    main()
