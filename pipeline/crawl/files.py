"""Which crawl files a job reads, and opening one as a stream wherever it lives.

Local paths and folders are listed here; a Common Crawl listing (`wat.paths.gz`) names files relative to the
crawl's root, which `prefix` supplies. Locations with a scheme (`s3a://`, `hdfs://`, `gs://`) are opened through
pyarrow's filesystems, as a stream: a crawl file is never read whole into memory.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import UserInputError

CRAWL_SUFFIXES = (".warc.gz", ".warc", ".wat.gz", ".wat")
LISTING_SUFFIXES = (".paths.gz", ".paths")
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3"}  # Hadoop's names for the filesystems pyarrow calls s3


def _scheme(location: str) -> str | None:
    head, separator, _ = location.partition("://")
    return head.lower() if separator and head.isalnum() else None


def is_local(location: str) -> bool:
    return _scheme(location) in (None, "file")


def open_stream(location: str) -> BinaryIO:
    """The file's bytes as a stream; OSError (naming the location) when it cannot be opened."""
    if is_local(location):
        return open(location.removeprefix("file://"), "rb")
    scheme = _scheme(location)
    from pyarrow import fs

    alias = _SCHEME_ALIASES.get(scheme, scheme)
    try:
        filesystem, path = fs.FileSystem.from_uri(alias + location[len(scheme):])
        return filesystem.open_input_stream(path, compression=None)
    except Exception as error:  # pyarrow raises ArrowInvalid and others, not OSError, for bad locations
        raise OSError(f"{location}: {error}") from None


def _listing(path: str, prefix: str | None) -> list[str]:
    if prefix is None:
        raise UserInputError(f"{path}: a paths listing names files relative to the crawl's root; give --prefix "
                             f"(a folder or a location such as s3a://commoncrawl/)")
    with open_stream(path) as raw:
        lines = (gzip.open(raw, "rt", encoding="utf-8") if path.endswith(".gz") else
                 (line.decode("utf-8") for line in raw))
        names = [line.strip() for line in lines if line.strip()]
    separator = "" if prefix.endswith("/") else "/"
    return [f"{prefix}{separator}{name}" for name in names]


def _is_crawl_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(CRAWL_SUFFIXES) and not path.name.startswith((".", "_"))


def crawl_files(inputs: list[str], prefix: str | None = None) -> list[str]:
    """Every crawl file the inputs name, in a stable order, each once; a missing local input is an error."""
    found: list[str] = []
    for given in inputs:
        if given.endswith(LISTING_SUFFIXES):
            found.extend(_listing(given, prefix))
        elif not is_local(given):
            found.append(given)
        elif (path := Path(given.removeprefix("file://"))).is_dir():
            files = sorted(str(file) for file in path.rglob("*") if _is_crawl_file(file))
            if not files:
                raise UserInputError(f"{path}: no crawl files ({', '.join(CRAWL_SUFFIXES)}) in this folder")
            found.extend(files)
        elif path.is_file():
            found.append(str(path))
        else:
            raise UserInputError(f"{given}: no such file or folder")
    return list(dict.fromkeys(found))
