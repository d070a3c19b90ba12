"""Embed every downloaded image and its caption with an open_clip model into DIR/embed (float16)."""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_model_options], jobs.embed_command)
