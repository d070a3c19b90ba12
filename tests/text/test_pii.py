"""Captions with personal data are recognised; ordinary numbers in captions are not."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.text.ingest import pii_kinds
from pipeline.text.pii import pii_kind
from tests.helpers import real_captions


@pytest.mark.parametrize("caption, kind", [
    ("contact me at jane.doe+photos@example.co.uk for prints", "e-mail address"),
    ("call 555-123-4567 today", "phone number"),
    ("Tel: +44 20 7946 0958", "phone number"),
    ("(020) 7946 0958 opening hours", "phone number"),
    ("+1.555.123.4567", "phone number"),
])
def test_personal_data_is_flagged(caption, kind):
    assert pii_kind(caption) == kind


@pytest.mark.parametrize("caption", [
    "wallpaper 1920 1080 hd", "taken on 2019-05-12 at noon", "iPhone 12 pro max 256 GB", "room 1204, floor 3",
    "a photo of a cat", "", None, "price 1,299.99 usd", "follow @photographer on social media",
])
def test_ordinary_captions_are_not(caption):
    assert pii_kind(caption) is None


ARROW_CASES = ["call 555-123-4567 today", "mail jane@example.com", "call \u0665\u0665\u0665-\u0661\u0662\u0663-"
               "\u0664\u0665\u0666\u0667 now", "1920 1080", "follow @photographer", None, "", "a photo of a cat"]


def test_the_arrow_look_first_gives_pii_kind_of_every_caption():
    """pii_kinds looks in Arrow first and sends only possible ones to pii_kind: the same verdicts, Arabic-Indic
    digits (Python's \\d) included, for text, chunked text and bytes."""
    expected = [pii_kind(caption) for caption in ARROW_CASES]
    assert expected[:3] == ["phone number", "e-mail address", "phone number"]
    assert pii_kinds(pa.array(ARROW_CASES)) == expected
    assert pii_kinds(pa.chunked_array([pa.array(ARROW_CASES[:4]), pa.array(ARROW_CASES[4:])])) == expected
    as_bytes = [None if caption is None else caption.encode() for caption in ARROW_CASES]
    assert pii_kinds(pa.array(as_bytes, pa.binary())) == expected


@pytest.mark.real_data
def test_the_arrow_look_first_agrees_on_every_real_caption():
    captions = real_captions()
    assert pii_kinds(pa.array(captions)) == [pii_kind(caption) for caption in captions]
