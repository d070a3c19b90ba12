"""Captions with personal data are recognised; ordinary numbers in captions are not."""

from __future__ import annotations

import pytest

from pipeline.text.pii import pii_kind


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
