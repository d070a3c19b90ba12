"""Decode and check every downloaded image, hash it, and reject exact and near-exact duplicates."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_validate_options], commands.validate_command)
