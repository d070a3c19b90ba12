"""Count samples per vocabulary entry from DIR/matches into DIR/entry_counts."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_metadata_options], commands.count_command)
