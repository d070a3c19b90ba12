"""Balance DIR/matches with t (or a target size) into DIR/selection."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_balance_options], commands.balance_command)
