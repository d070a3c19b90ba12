"""Load a metadata vocabulary: entry id = position in the file.

Accepts MetaCLIP's `metadata.json` (a JSON list of strings) or a text file with one entry per line,
either of them optionally gzip-compressed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from pipeline.errors import UserInputError


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


def _json_entries(path: Path, text: str) -> list[tuple[int, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserInputError(f"{path}:{err.lineno}: invalid JSON vocabulary ({err.msg})") from None
    if not isinstance(data, list):
        raise UserInputError(f"{path}: a JSON vocabulary must be a list of strings")
    for position, entry in enumerate(data):
        if not isinstance(entry, str):
            raise UserInputError(f"{path}: entry {position} is {type(entry).__name__}, not a string")
    # JSON entries are kept exactly as written (MetaCLIP compatibility); positions are reported 0-based.
    return list(enumerate(data))


def _line_entries(text: str) -> list[tuple[int, str]]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [(number, line.rstrip("\r").strip()) for number, line in enumerate(lines, start=1)]


def load_entries(path: str | Path) -> list[str]:
    """Read a vocabulary; empty or duplicate entries are an error naming the file and line (or index)."""
    path = Path(path)
    text = _read_text(path)
    is_json = text.lstrip()[:1] in ("[", "{")
    numbered = _json_entries(path, text) if is_json else _line_entries(text)
    where = "entry" if is_json else "line"
    first_seen: dict[str, int] = {}
    for number, entry in numbered:
        if not entry.strip():
            raise UserInputError(f"{path}: {where} {number} is empty")
        if entry in first_seen:
            raise UserInputError(
                f"{path}: {where} {number} duplicates {where} {first_seen[entry]} ({entry!r})"
            )
        first_seen[entry] = number
    if not numbered:
        raise UserInputError(f"{path}: the vocabulary has no entries")
    return [entry for _, entry in numbered]


def entries_fingerprint(entries: list[str]) -> str:
    """Identity of a vocabulary's content and order (entry ids are positions)."""
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(entry.encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()[:16]
