"""Ingest core: validate raw pool rows, give each a stable uid, record every rejected row with a reason.

Works on `pipeline.text.pool.RawBatch`es and returns Arrow tables, so it runs the same in a test, a script or
a Spark task. Exact duplicates are removed later, across the whole pool, by the Spark binding; the
keys that define them, and their hashes for a cheap look for repeats, are here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.hashing import content_uids, pool_uid
from pipeline.run.directory import REJECT_SCHEMA
from pipeline.text.langid import identify_all
from pipeline.text.pii import MIN_PHONE_DIGITS, pii_kind
from pipeline.text.pool import RawBatch

DEDUP_KEYS = ("url_caption", "url", "none")

ROW_SCHEMA = pa.schema([
    ("uid", pa.string()),
    ("url", pa.string()),
    ("caption", pa.string()),
    ("source_file", pa.string()),
    ("source_row", pa.int64()),
])

PREVIEW_CHARS = 200
# The columns whose equality makes two rows duplicates, per IngestConfig.dedup_key.
DEDUP_COLUMNS = {"url_caption": ["url", "caption"], "url": ["url"]}


@dataclass(frozen=True)
class IngestConfig:
    """What makes a pool row acceptable and what counts as a duplicate."""

    max_caption_bytes: int = 4096
    dedup_key: str = "url_caption"
    drop_pii: bool = False  # reject captions holding an e-mail address or phone number (always counted)
    identify_language: bool = False  # give every caption a `language` (lid.176) when the pool has none


def _as_text(column: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The column as strings, and which rows are not UTF-8 (those read as a placeholder "x").

    Fast path: the whole column validates at once.
    """
    try:
        return column.cast(pa.string()), np.zeros(len(column), dtype=bool)
    except pa.ArrowInvalid:
        invalid = np.zeros(len(column), dtype=bool)
        for position, value in enumerate(column.to_pylist()):
            if value is not None:
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    invalid[position] = True
        return pc.if_else(pa.array(~invalid), column, pa.scalar(b"x", column.type)).cast(pa.string()), invalid


def _blank(text: pa.Array) -> np.ndarray:
    """Null, empty or only whitespace."""
    blank = pc.or_kleene(pc.equal(pc.binary_length(text), 0), pc.utf8_is_space(text))
    return blank.fill_null(True).to_numpy(zero_copy_only=False)


def reject_reasons(batch: RawBatch, config: IngestConfig) -> list[tuple[str, str] | None]:
    """Per row: None if the row is usable, else (reason, detail). The first failing check wins."""
    reasons: list[tuple[str, str] | None] = list(batch.reader_rejects)
    checks: list[tuple[np.ndarray, str, str]] = []
    for name, column in (("url", batch.url), ("caption", batch.caption), ("uid", batch.uid)):
        if column is None:
            continue
        text, invalid = _as_text(column)
        checks.append((invalid, "invalid_utf8", f"{name} is not valid UTF-8"))
        checks.append((_blank(text) & ~invalid, f"missing_{name}", f"{name} is null or blank"))
    lengths = pc.binary_length(batch.caption).fill_null(0).to_numpy(zero_copy_only=False)
    too_long = lengths > config.max_caption_bytes
    checks.append((too_long, "caption_too_long", f"caption longer than {config.max_caption_bytes} bytes"))
    for mask, reason, detail in checks:
        for position in np.flatnonzero(mask):
            if reasons[position] is None:
                extra = f" ({lengths[position]} bytes)" if reason == "caption_too_long" else ""
                reasons[position] = (reason, detail + extra)
    if config.drop_pii:
        for position, kind in enumerate(pii_kinds(batch.caption)):
            if kind is not None and reasons[position] is None:
                reasons[position] = ("pii", f"caption holds an {kind}" if kind[0] in "aeiou" else
                                     f"caption holds a {kind}")
    return reasons


def pii_kinds(captions: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """pipeline.text.pii's verdict on each caption (bytes or text; undecodable bytes read with replacements).

    Text captions are looked at in Arrow first: only those with an "@" or enough digits for a phone number
    (MIN_PHONE_DIGITS, any script's digits, as Python's \\d) go through the regexes in Python (on real
    captions: 4.8 us -> 0.7 us a row)."""
    if not (pa.types.is_string(captions.type) or pa.types.is_large_string(captions.type)):
        return [pii_kind(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
                for value in captions.to_pylist()]
    maybe = pc.or_(pc.match_substring(captions, "@"),
                   pc.greater_equal(pc.count_substring_regex(captions, r"\p{Nd}"), MIN_PHONE_DIGITS))
    positions = np.flatnonzero(pc.fill_null(maybe, False).to_numpy(zero_copy_only=False))
    kinds: list[str | None] = [None] * len(captions)
    for position, caption in zip(positions, captions.take(pa.array(positions, pa.int64())).to_pylist()):
        kinds[position] = pii_kind(caption)
    return kinds


def _preview(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value[: PREVIEW_CHARS * 4].decode("utf-8", "replace")[:PREVIEW_CHARS]


def _rejects_table(batch: RawBatch, positions: np.ndarray, reasons: list) -> pa.Table:
    captions = batch.caption.take(pa.array(positions, pa.int64())).to_pylist()
    return pa.table({
        "uid": pa.nulls(len(positions), pa.string()),
        "reason": [reasons[position][0] for position in positions],
        "detail": [reasons[position][1] for position in positions],
        "source_file": [batch.path] * len(positions),
        "source_row": batch.rows[positions],
        "preview": [_preview(caption) for caption in captions],
    }, schema=REJECT_SCHEMA)


def canonicalize(batch: RawBatch, config: IngestConfig) -> tuple[pa.Table, pa.Table]:
    """Split a raw batch into canonical rows (ROW_SCHEMA, plus `language` when the pool has it or it is to be
    identified) and rejects
    (REJECT_SCHEMA). A language value that is not UTF-8 becomes null: it describes the row, it is not the row."""
    reasons = reject_reasons(batch, config)
    rejected = np.array([reason is not None for reason in reasons], dtype=bool)
    good = pa.array(np.flatnonzero(~rejected), pa.int64())
    urls, captions = batch.url.take(good), batch.caption.take(good)
    if batch.uid is not None:
        uids = pa.array([pool_uid(value.decode("utf-8")) for value in batch.uid.take(good).to_pylist()], pa.string())
    else:
        uids = content_uids(urls, captions)
    rows = pa.table({
        "uid": uids,
        "url": urls.cast(pa.string()),
        "caption": captions.cast(pa.string()),
        "source_file": pa.array([batch.path] * len(good), pa.string()),
        "source_row": batch.rows[~rejected],
    }, schema=ROW_SCHEMA)
    if batch.language is not None:
        text, invalid = _as_text(batch.language.take(good))
        rows = rows.append_column("language", pc.if_else(pa.array(~invalid), text, pa.scalar(None, pa.string())))
    elif config.identify_language:
        rows = rows.append_column("language", pa.array(identify_all(rows.column("caption").to_pylist())[0],
                                                       pa.string()))
    return rows, _rejects_table(batch, np.flatnonzero(rejected), reasons)


def duplicate_keys(dedup_key: str, pool_uids: bool) -> dict[str, list[str]]:
    """Reject reason -> the columns that must be unique across the pool, in the order duplicates are
    resolved.

    A content-derived uid stands for (url, caption) as a shorter key; pool-given uids must be unique
    too, and are the only check when deduplication is off.
    """
    keys = {}
    if dedup_key != "none":
        keys["duplicate"] = ["uid"] if dedup_key == "url_caption" and not pool_uids else DEDUP_COLUMNS[dedup_key]
    if pool_uids or dedup_key == "none":
        keys["duplicate_uid"] = ["uid"]
    return keys


def key_hashes(rows: pa.Table, keys: dict[str, list[str]]) -> pa.Table:
    """A 64-bit hash of each key per row (a column per key, named by its reason): what a pool-wide look
    for repeats reads instead of the rows themselves."""
    return pa.table({reason: pl.from_arrow(rows.select(key)).hash_rows().to_arrow() for reason, key in keys.items()},
                    schema=key_hashes_schema(keys))


def key_hashes_schema(keys: dict[str, list[str]]) -> pa.Schema:
    return pa.schema([(reason, pa.uint64()) for reason in keys])


def any_repeat(hashes: np.ndarray) -> bool:
    """Whether a hash occurs twice. When none does, no two rows share the key (equal keys hash alike);
    when one does, the rows may still differ (a collision), so an exact look must follow."""
    ordered = np.sort(hashes)
    return bool((ordered[1:] == ordered[:-1]).any())
