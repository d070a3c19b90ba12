"""Text curation: ingest -> match -> count -> balance.

    spark-submit jobs/curate_text.py --pool POOL --metadata VOCAB --out DIR [--t 20000 | --target-size N]
"""

import argparse

from pipeline import cli
from pipeline.spark import jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_pool_options(parser)
    cli.add_metadata_options(parser)
    cli.add_balance_options(parser)
    cli.add_run_options(parser, "run directory to write the stages into")
    args = parser.parse_args()
    cli.run_job(lambda: jobs.curate_text_command(args))


if __name__ == "__main__":
    main()
