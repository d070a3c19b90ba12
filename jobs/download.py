"""Download the images of DIR/selection with img2dataset into DIR/download (resumable; --retry-failed)."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_download_options], commands.download_command)
