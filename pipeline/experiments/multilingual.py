"""The real captions in five languages beside the repo, and the slice of them shipped for make demo-worldwide.

Multi30k's training captions in English, German, French and Czech (line i describes the same Flickr30k image in
each language) and Flickr8k-CN's crowd-written Chinese captions (`IMAGE#zhc#N<space>caption`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import REPO

MULTILINGUAL = REPO.parent / "shared" / "data" / "captions" / "multilingual"
FILES = {"en": "multi30k_train.en.gz", "de": "multi30k_train.de.gz", "fr": "multi30k_train.fr.gz",
         "cs": "multi30k_train.cs.gz", "zh": "flickr8k_cn_zhc.txt.gz"}
DEMO_POOL = REPO / "data" / "multilingual" / "captions.parquet"


def _lines(language: str, count: int) -> list[str]:
    with gzip.open(MULTILINGUAL / FILES[language], "rt", encoding="utf-8") as lines:
        return [line.strip() for _, line in zip(range(count), lines)]


def multilingual_captions(language: str, count: int) -> list[str]:
    """The first `count` captions in the language."""
    lines = _lines(language, count)
    return [line.split(" ", 1)[1] for line in lines] if language == "zh" else lines


def write_demo_pool(per_language: int = 400, path: Path = DEMO_POOL) -> int:
    """The demo pool: url (a placeholder: the datasets ship no urls; Multi30k's line i of every language shares
    one, as it shows one image), caption, and source (file and line, or Flickr8k caption id); no language column."""
    rows: dict[str, list[str]] = {"url": [], "caption": [], "source": []}
    for language in FILES:
        for number, line in enumerate(_lines(language, per_language)):
            if language == "zh":
                caption_id, caption = line.split(" ", 1)
                rows["url"].append(f"https://flickr8k.example/{caption_id.split('#')[0]}")
                rows["source"].append(f"flickr8k_cn:{caption_id}")
            else:
                caption = line
                rows["url"].append(f"https://multi30k.example/train/{number}.jpg")
                rows["source"].append(f"multi30k_train.{language}:{number + 1}")
            rows["caption"].append(caption)
    pq.write_table(pa.table(rows), path, compression="zstd")
    return len(rows["url"])
