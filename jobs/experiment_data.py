"""The closed-loop experiment's data: a long-tailed pool from CIFAR-10, curated by the pipeline and taken raw."""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_experiment_data_options], jobs.experiment_data_command)
