"""Batch content uids (native/metacurate_uids.pyx) and uid words from Arrow, against their one-at-a-time forms."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from pipeline import hashing
from pipeline.hashing import content_uid, content_uids, uid_words
from tests.helpers import REPO


def _random_bytes(draw: random.Random, lengths: list[int]) -> bytes:
    return bytes(draw.randrange(256) for _ in range(draw.choice(lengths)))


def test_the_batch_uids_are_blake2b_of_each_pair_at_every_block_boundary():
    """Lengths around BLAKE2b's 128-byte blocks (the separator byte included), empty parts, any bytes."""
    draw = random.Random(0)
    urls = [_random_bytes(draw, [0, 1, 63, 126, 127, 128, 129, 255, 256, 257, 1000]) for _ in range(2_000)]
    captions = [_random_bytes(draw, [0, 1, 2, 127, 128, 300]) for _ in range(2_000)]
    expected = [content_uid(url, caption) for url, caption in zip(urls, captions)]
    got = content_uids(pa.array(urls, pa.binary()), pa.array(captions, pa.large_binary()))
    assert got.type == pa.string() and got.to_pylist() == expected
    assert hashing.metacurate_uids is not None  # the compiled path was the one measured here


@pytest.mark.real_data
def test_real_captions_get_the_same_uids_sliced_and_chunked(captions):
    texts = captions[:5_000]
    urls = [f"https://example.org/{index}.jpg" for index in range(len(texts))]
    expected = [content_uid(url.encode(), text.encode()) for url, text in zip(urls, texts)]
    arrow_urls, arrow_captions = pa.array(urls), pa.array(texts)
    assert content_uids(arrow_urls, arrow_captions).to_pylist() == expected
    assert content_uids(arrow_urls.slice(7, 100), arrow_captions.slice(7, 100)).to_pylist() == expected[7:107]
    chunked = pa.chunked_array([arrow_captions.slice(0, 10), arrow_captions.slice(10)])
    assert content_uids(arrow_urls, chunked).to_pylist() == expected


def test_without_the_compiled_module_uids_come_from_hashlib():
    code = ("import sys; sys.modules['metacurate_uids'] = None; import pyarrow as pa;"
            "from pipeline.hashing import content_uids, content_uid, metacurate_uids; assert metacurate_uids is None;"
            "print(content_uids(pa.array([b'u', b'']), pa.array(['a dog', ''])).to_pylist() =="
            " [content_uid(b'u', b'a dog'), content_uid(b'', b'')])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.strip() == "True", result.stderr


def test_uid_words_from_arrow_equal_those_from_strings():
    draw = random.Random(1)
    uids = ["".join(draw.choice("0123456789abcdefABCDEF") for _ in range(32)) for _ in range(1_000)]
    high, low = uid_words(uids)
    assert high.dtype == np.uint64 and len(set(high.tolist())) > 990
    for arrow in (pa.array(uids), pa.array(uids, pa.large_string()), pa.chunked_array([uids[:10], uids[10:]])):
        assert [words.tolist() for words in uid_words(arrow)] == [high.tolist(), low.tolist()]
    assert [words.tolist() for words in uid_words(pa.array(uids).slice(3, 5))] == [high[3:8].tolist(),
                                                                                 low[3:8].tolist()]
    assert [len(words) for words in uid_words(pa.array([], pa.string()))] == [0, 0]


@pytest.mark.parametrize("bad", [["abc"], ["g" * 32], ["0" * 32, None]])
def test_uid_words_refuse_what_is_not_a_uid(bad):
    with pytest.raises(ValueError, match="32 hex digits"):
        uid_words(pa.array(bad, pa.string()))
