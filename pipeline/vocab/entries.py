"""Load a metadata vocabulary: entry id = position in the file.

Accepts MetaCLIP's `metadata.json` (a JSON list of strings) or a text file with one entry per line,
either of them optionally gzip-compressed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from pipeline import REPO
from pipeline.errors import UserInputError

SHIPPED_VOCABULARY = REPO / "metadata" / "vocab.txt.gz"  # the 500k English entries (metadata/README)


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserInputError(f"{path}: cannot read vocabulary ({err.strerror or err})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise UserInputError(f"{path}: corrupt gzip vocabulary ({err})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise UserInputError(f"{path}:{line}: vocabulary is not valid UTF-8") from None


def _json_entries(path: Path, text: str) -> list[str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserInputError(f"{path}:{err.lineno}: invalid JSON vocabulary ({err.msg})") from None
    if not isinstance(data, list):
        raise UserInputError(f"{path}: a JSON vocabulary must be a list of strings")
    for position, entry in enumerate(data):
        if not isinstance(entry, str):
            raise UserInputError(f"{path}: entry {position} is {type(entry).__name__}, not a string")
    # JSON entries are kept exactly as written (MetaCLIP compatibility).
    return data


def _line_entries(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return list(map(str.strip, lines))


def _first_bad_entry(path: Path, entries: list[str], is_json: bool) -> UserInputError:
    """The error for the first empty or repeated entry, by JSON position (from 0) or line (from 1)."""
    where, first_number = ("entry", 0) if is_json else ("line", 1)
    first_seen: dict[str, int] = {}
    for number, entry in enumerate(entries, start=first_number):
        if not entry.strip():
            return UserInputError(f"{path}: {where} {number} is empty")
        if entry in first_seen:
            return UserInputError(f"{path}: {where} {number} duplicates {where} {first_seen[entry]} ({entry!r})")
        first_seen[entry] = number
    raise AssertionError("called without a bad entry")


def load_entries(path: str | Path) -> list[str]:
    """Read a vocabulary; empty or duplicate entries are an error naming the file and line (or index).

    Valid vocabularies are checked with set and str methods only (500k entries: 0.42 -> 0.25 s);
    the entry-by-entry walk that names the culprit runs only when that check fails.
    """
    path = Path(path)
    text = _read_text(path)
    is_json = text.lstrip()[:1] in ("[", "{")
    entries = _json_entries(path, text) if is_json else _line_entries(text)
    if not entries:
        raise UserInputError(f"{path}: the vocabulary has no entries")
    distinct = set(entries)
    if len(distinct) != len(entries) or "" in distinct or any(map(str.isspace, entries)):
        raise _first_bad_entry(path, entries, is_json)
    return entries


def entries_fingerprint(entries: list[str]) -> str:
    """Identity of a vocabulary's content and order (entry ids are positions)."""
    lines = "\n".join(entries) + "\n"  # hashed at once: 3x faster than entry by entry, same digest
    return hashlib.sha256(lines.encode("utf-8", "surrogatepass")).hexdigest()[:16]
