"""Score the images validation kept with NudeNet's offline NSFW detector (extra: safety, AGPL-3.0) into
DIR/safety; those at or above --nsfw-threshold are rejected with reason nsfw."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_safety_options], commands.safety_command)
