"""Balance DIR/matches with t (or a target size) into DIR/selection."""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_metadata_options, cli.add_balance_options], jobs.balance_command)
