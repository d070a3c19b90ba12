"""Decode and check every downloaded image, hash it, and reject exact and near-exact duplicates."""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_validate_options], jobs.validate_command)
