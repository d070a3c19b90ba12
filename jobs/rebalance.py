"""The final MetaCLIP balance of DIR/selection over the images that survived validation and, when the run has a
dedup stage, SemDeDup at one eps, into DIR/rebalance."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_rebalance_options], commands.rebalance_command)
