"""Embed every downloaded image and its caption with an open_clip model into DIR/embed (float16)."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_model_options], commands.embed_command)
