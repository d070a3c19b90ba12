"""The image side offline: CIFAR-10 images shipped in data/ served on 127.0.0.1, curated into shards."""

from pipeline.cli import commands, options

if __name__ == "__main__":
    options.job_main(__doc__, [options.add_demo_options], commands.demo_images_command)
