"""The final MetaCLIP balance of DIR/selection over the images that survived validation, into DIR/rebalance."""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_balance_options], jobs.rebalance_command)
