"""Balance DIR/matches with t (or a target size) into DIR/selection."""

import argparse

from pipeline import cli
from pipeline.spark import jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    cli.add_metadata_options(parser)
    cli.add_balance_options(parser)
    cli.add_run_options(parser, "run directory")
    args = parser.parse_args()
    cli.run_job(lambda: jobs.balance_command(args))


if __name__ == "__main__":
    main()
