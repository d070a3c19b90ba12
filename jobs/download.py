"""Download the images of DIR/selection with img2dataset into DIR/download (resumable; --retry-failed)."""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_download_options], jobs.download_command)
