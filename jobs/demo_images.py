"""The image side offline: CIFAR-10 images shipped in data/ served on 127.0.0.1, curated into shards."""

from pipeline import cli
from pipeline.spark import jobs

if __name__ == "__main__":
    cli.job_main(__doc__, [cli.add_demo_options], jobs.demo_images_command)
