"""Match DIR/ingest captions against the vocabulary into DIR/matches."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_metadata_options], commands.match_command)
