"""Personal data in captions: e-mail addresses and phone numbers, flagged at ingest.

A heuristic, as in the filters of the large crawls: an e-mail address is `name@domain.tld`; a phone number is a
run of 9 to 15 digits in at least three groups (`555-123-4567`, `(020) 7946 0958`) or after a `+`
(`+44 20 7946 0958`). Resolutions (`1920 1080`) and dates (`2019-05-12`) have too few digits to count; long
identifiers written in groups (an ISBN) may.
"""

from __future__ import annotations

import re

MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 9, 15
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])\+?\(?\d[\d\s().-]{6,22}\d(?!\w)")
_SEPARATORS = re.compile(r"[\s().-]+")


def _is_phone(candidate: str) -> bool:
    digits = sum(character.isdigit() for character in candidate)
    groups = [group for group in _SEPARATORS.split(candidate.lstrip("+")) if group]
    return MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS and (candidate.startswith("+") or len(groups) >= 3)


def pii_kind(caption: str | None) -> str | None:
    """What personal data the caption holds ("e-mail address", "phone number"), or None."""
    if not caption:
        return None
    if EMAIL.search(caption):
        return "e-mail address"
    if any(_is_phone(match.group()) for match in _PHONE_CANDIDATE.finditer(caption)):
        return "phone number"
    return None
