"""img2dataset's Downloader with the network guard (pipeline.image.network) installed in whichever process
runs it: img2dataset's spawned worker processes, or Spark executors with its pyspark distributor."""

from __future__ import annotations

import functools
import importlib
from contextlib import contextmanager

from img2dataset.downloader import Downloader

from pipeline.image.network import NetworkPolicy, install


class GuardedDownloader(Downloader):
    def __init__(self, *args, policy: NetworkPolicy, **kwargs):
        super().__init__(*args, **kwargs)
        self.policy = policy

    def __call__(self, row):
        install(self.policy)  # this process's urllib opener: the one img2dataset's fetch threads use
        return super().__call__(row)


@contextmanager
def guarded_img2dataset(policy: NetworkPolicy):
    """While open, img2dataset.download builds its downloader as a GuardedDownloader (it names the class in
    img2dataset.main; the instance is what travels to its workers)."""
    main = importlib.import_module("img2dataset.main")  # the module: the package exports a function of that name
    original = main.Downloader
    main.Downloader = functools.partial(GuardedDownloader, policy=policy)
    try:
        yield
    finally:
        main.Downloader = original
