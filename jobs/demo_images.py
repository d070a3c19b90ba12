"""The image side offline: CIFAR-10 images shipped in data/ served on 127.0.0.1, curated into shards."""

import argparse

from pipeline import cli
from pipeline.spark import jobs


def add_demo_options(parser: argparse.ArgumentParser) -> None:
    cli.add_metadata_options(parser)
    parser.add_argument("--t", type=float, default=40, help="per-entry cap of both balances (default 40)")


if __name__ == "__main__":
    cli.job_main(__doc__, [add_demo_options], jobs.demo_images_command)
