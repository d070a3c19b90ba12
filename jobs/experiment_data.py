"""The closed-loop experiment's data: a long-tailed pool from CIFAR-10, curated by the pipeline and taken raw."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_experiment_data_options], commands.experiment_data_command)
