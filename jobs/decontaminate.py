"""Remove pool images that duplicate evaluation images (exact, near-exact by pHash, and semantic when the run
has embeddings) into DIR/decontaminate; each removal names the evaluation image."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_decontaminate_options], commands.decontaminate_command)
