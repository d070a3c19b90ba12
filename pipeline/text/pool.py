"""Read a raw pool (Parquet, JSON lines, TSV/CSV, img2dataset output) as Arrow batches.

Pure Python/Arrow: the Spark binding only decides which worker reads which `PoolUnit`.
A pool is split into units (a Parquet row group, or a whole text file) that are read independently.
Text values come back as bytes exactly as stored, so that validation (`pipeline.text.ingest`) can tell
invalid UTF-8 apart from text; rows a reader cannot parse come back with a reject reason.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import REPO
from pipeline.errors import UserInputError

SAMPLE_POOL = REPO / "data" / "sample_pool.parquet"  # the embedded default pool of make demo

FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".tsv": "tsv", ".csv": "csv"}
URL_NAMES = ("url", "URL", "image_url", "img_url")
CAPTION_NAMES = ("caption", "TEXT", "text", "alt_text", "alt")
UID_NAMES = ("uid", "key")
LANGUAGE_NAMES = ("language",)  # carried through ingest, match and balance when the pool has it
# img2dataset writes NNNNN.parquet, NNNNN.tar and NNNNN_stats.json per shard; the stats are not rows.
IMG2DATASET_STATS = "_stats.json"
SPLIT_BYTES = 64 << 20  # large TSV/JSONL files are read in slices of about this size, in parallel
SPLITTABLE = ("tsv", "jsonl")
# csv's default field limit (128 KiB) would turn a long caption into a parse error instead of a reject.
csv.field_size_limit(sys.maxsize)


def file_format(path: Path) -> str | None:
    suffixes = path.suffixes
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return FORMATS.get(suffixes[-1]) if suffixes else None


def discover(pool: str | Path) -> list[Path]:
    """Pool files in a stable order: the file itself, or every supported file under a directory."""
    pool = Path(pool)
    if pool.is_file():
        if file_format(pool) is None:
            raise UserInputError(f"{pool}: unsupported pool format (use {', '.join(sorted(FORMATS))}, optionally .gz)")
        return [pool]
    if not pool.is_dir():
        raise UserInputError(f"{pool}: pool not found")
    # As in Spark and Hive, a name starting with _ or . is hidden, also for what is under it (_rejects, _links)
    files = sorted(
        path for path in pool.rglob("*")
        if path.is_file() and file_format(path) and not path.name.endswith(IMG2DATASET_STATS)
        and not any(part.startswith(("_", ".")) for part in path.relative_to(pool).parts)
    )
    if not files:
        raise UserInputError(f"{pool}: no pool files (.parquet, .jsonl, .tsv, .csv) in this directory")
    return files


def _open_text(path: Path, byte_range: tuple[int, int] | None = None):
    if byte_range is not None:
        with open(path, "rb") as whole:
            whole.seek(byte_range[0])
            raw = io.BytesIO(whole.read(byte_range[1] - byte_range[0]))
    else:
        raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    # surrogateescape keeps undecodable bytes recoverable, so they become an invalid_utf8 reject.
    return io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")


def _looks_like_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _first_json_record(handle) -> dict | None:
    """The first line that parses as a JSON object (malformed lines are rejected later, row by row)."""
    for line in handle:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            return record
    return None


def _text_columns(path: Path, fmt: str) -> tuple[list[str], bool, dict[str, str]] | None:
    """Column names of a text file, whether its first line is a header, and first-row values.

    None for a file without any content (nothing to read, nothing to account for).
    """
    with _open_text(path) as handle:
        if not any(line.strip() for line in handle):
            return None
        handle.seek(0)
        if fmt == "jsonl":
            record = _first_json_record(handle) or {}
            return list(record), False, {key: value for key, value in record.items() if isinstance(value, str)}
        first = next(_csv_reader(handle, fmt), None) or []
    if any(_looks_like_url(value) for value in first):
        names = [f"col{index}" for index in range(len(first))]
        return names, False, dict(zip(names, first))
    return first, True, {}


def _csv_reader(handle, fmt: str):
    if fmt == "tsv":
        return csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
    return csv.reader(handle)


@dataclass(frozen=True)
class PoolColumns:
    """Which source columns hold the url, the caption and (optionally) the pool's own id."""

    url: str
    caption: str
    uid: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class PoolUnit:
    """One independently readable piece of a pool: a Parquet row group, a text file or a slice of one."""

    path: str
    fmt: str
    row_group: int | None = None
    first_row: int = 0  # Parquet: index of the unit's first row; text: line number before the range
    rows: int | None = None  # known up front for Parquet, from its metadata
    byte_range: tuple[int, int] | None = None  # a line-aligned slice of a large TSV/JSONL file
    has_header: bool = True
    column_names: tuple[str, ...] = field(default_factory=tuple)


def _pick(names: list[str], wanted: str | None, candidates: tuple[str, ...], role: str,
          path: Path) -> str | None:
    if wanted is not None:
        if wanted not in names:
            raise UserInputError(f"{path}: no column {wanted!r} for the {role} (columns: {', '.join(names) or 'none'})")
        return wanted
    for candidate in candidates:
        if candidate in names:
            return candidate
    return None


def _line_aligned_splits(path: Path, split_bytes: int) -> list[tuple[int, int, int]]:
    """(start, end, lines before start) of slices of about split_bytes, each ending after a newline."""
    splits: list[tuple[int, int, int]] = []
    start = lines_before = position = lines = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            cursor = 0
            while (target := start + split_bytes - position) < len(chunk):
                cut = chunk.find(b"\n", max(cursor, target))
                if cut < 0:
                    break
                lines += chunk.count(b"\n", cursor, cut + 1)
                splits.append((start, position + cut + 1, lines_before))
                start, lines_before, cursor = position + cut + 1, lines, cut + 1
            lines += chunk.count(b"\n", cursor)
            position += len(chunk)
    if position > start:
        splits.append((start, position, lines_before))
    return splits


def _text_units(path: Path, fmt: str, has_header: bool, names: tuple[str, ...],
                split_bytes: int) -> list[PoolUnit]:
    """One unit per text file, or line-aligned slices of a large uncompressed TSV or JSONL file.

    CSV may quote newlines and gzip cannot be entered mid-stream, so those stay whole.
    """
    if fmt not in SPLITTABLE or path.suffix == ".gz" or path.stat().st_size <= split_bytes:
        return [PoolUnit(str(path), fmt, has_header=has_header, column_names=names)]
    return [PoolUnit(str(path), fmt, first_row=lines_before, byte_range=(start, end),
                     has_header=has_header and start == 0, column_names=names)
            for start, end, lines_before in _line_aligned_splits(path, split_bytes)]


def _infer_headerless(names: list[str], first_row: dict[str, str]) -> tuple[str | None, str | None]:
    """In a file without a header (CC3M's caption<TAB>url), the url column is the one holding a url."""
    urls = [name for name in names if _looks_like_url(first_row.get(name, ""))]
    others = [name for name in names if name not in urls]
    return (urls[0] if len(urls) == 1 else None), (others[0] if len(others) == 1 else None)


def resolve(pool: str | Path, url_col: str | None = None, caption_col: str | None = None,
            uid_col: str | None = None, split_bytes: int = SPLIT_BYTES) -> tuple[list[PoolUnit], PoolColumns]:
    """Plan the units of a pool and find its columns; a missing column is an error naming the file."""
    units: list[PoolUnit] = []
    chosen: PoolColumns | None = None
    for path in discover(pool):
        fmt = file_format(path)
        if fmt == "parquet":
            try:
                meta = pq.ParquetFile(path).metadata
            except (pa.ArrowException, OSError) as err:
                raise UserInputError(f"{path}: not a readable Parquet file ({err})") from None
            names, has_header, first_row = list(meta.schema.names), True, {}
        else:
            found = _text_columns(path, fmt)
            if found is None:
                continue
            names, has_header, first_row = found
        url = _pick(names, url_col, URL_NAMES, "url", path)
        caption = _pick(names, caption_col, CAPTION_NAMES, "caption", path)
        if not has_header and (url is None or caption is None):
            guessed_url, guessed_caption = _infer_headerless(names, first_row)
            url, caption = url or guessed_url, caption or guessed_caption
        uid = _pick(names, uid_col, UID_NAMES, "uid", path)
        for role, column, flag in (("url", url, "--url-col"), ("caption", caption, "--caption-col")):
            if column is None:
                raise UserInputError(
                    f"{path}: cannot find the {role} column (columns: {', '.join(names) or 'none'}); pass {flag}"
                )
        language = _pick(names, None, LANGUAGE_NAMES, "language", path)
        columns = PoolColumns(url=url, caption=caption, uid=uid, language=language)
        if chosen is not None and columns != chosen:
            raise UserInputError(f"{path}: columns {columns} differ from the rest of the pool ({chosen})")
        chosen = columns
        if fmt == "parquet":
            first = 0
            for group in range(meta.num_row_groups):
                size = meta.row_group(group).num_rows
                units.append(PoolUnit(str(path), fmt, row_group=group, first_row=first, rows=size))
                first += size
        else:
            units.extend(_text_units(path, fmt, has_header, tuple(names), split_bytes))
    if chosen is None:
        raise UserInputError(f"{pool}: the pool is empty")
    return units, chosen


@dataclass
class RawBatch:
    """Rows of one unit as raw bytes, with the row numbers and any reason the reader rejected a row for."""

    path: str
    rows: np.ndarray
    url: pa.Array
    caption: pa.Array
    uid: pa.Array | None
    reader_rejects: list[tuple[str, str] | None]
    language: pa.Array | None = None


def _as_bytes(value) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return b"\xff"  # an unpaired surrogate from a JSON escape: reported as invalid UTF-8


def _binary(values: list) -> pa.Array:
    return pa.array([_as_bytes(value) for value in values], type=pa.binary())


def read_unit(unit: PoolUnit, columns: PoolColumns, batch_rows: int = 65536) -> Iterator[RawBatch]:
    """Yield the rows of one unit in batches."""
    if unit.fmt == "parquet":
        yield from _read_parquet(unit, columns, batch_rows)
    else:
        yield from _read_text(unit, columns, batch_rows)


def _read_parquet(unit: PoolUnit, columns: PoolColumns, batch_rows: int) -> Iterator[RawBatch]:
    wanted = [columns.url, columns.caption] + [column for column in (columns.uid, columns.language) if column]
    try:
        table = pq.ParquetFile(unit.path).read_row_group(unit.row_group, columns=list(dict.fromkeys(wanted)))
    except (pa.ArrowException, OSError) as err:
        raise UserInputError(f"{unit.path}: row group {unit.row_group} cannot be read ({err})") from None
    for offset in range(0, max(table.num_rows, 1), batch_rows):
        part = table.slice(offset, batch_rows)
        if part.num_rows == 0:
            return
        start = unit.first_row + offset
        yield RawBatch(
            path=unit.path,
            rows=np.arange(start, start + part.num_rows, dtype=np.int64),
            url=_column_bytes(part.column(columns.url), unit.path, columns.url),
            caption=_column_bytes(part.column(columns.caption), unit.path, columns.caption),
            uid=_column_bytes(part.column(columns.uid), unit.path, columns.uid) if columns.uid else None,
            reader_rejects=[None] * part.num_rows,
            language=(_column_bytes(part.column(columns.language), unit.path, columns.language)
                      if columns.language else None),
        )


def _column_bytes(column: pa.ChunkedArray, path: str, name: str) -> pa.Array:
    """A text column as binary (zero-copy for strings); other types are rendered as text."""
    column = column.combine_chunks()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.binary() if pa.types.is_string(column.type) else pa.large_binary())
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return column
    if pa.types.is_integer(column.type):
        return _binary(column.to_pylist())
    raise UserInputError(f"{path}: column {name!r} has type {column.type}, expected text")


def _read_text(unit: PoolUnit, columns: PoolColumns, batch_rows: int) -> Iterator[RawBatch]:
    wanted = (columns.url, columns.caption, columns.uid, columns.language)
    with _open_text(Path(unit.path), unit.byte_range) as handle:
        if unit.fmt == "jsonl":
            records = _json_records(handle, unit.first_row)
        else:
            records = _csv_records(handle, unit, {name: i for i, name in enumerate(unit.column_names)})
        chunk: list[tuple[int, dict | None, tuple[str, str] | None]] = []
        last_row = unit.first_row
        try:
            for record in records:
                chunk.append(record)
                last_row = record[0]
                if len(chunk) == batch_rows:
                    yield _text_batch(unit.path, chunk, wanted)
                    chunk = []
        except (EOFError, OSError, zlib.error) as err:  # a truncated or corrupt gzip file
            raise UserInputError(f"{unit.path}: unreadable after line {last_row} ({err})") from None
        if chunk:
            yield _text_batch(unit.path, chunk, wanted)


def _text_batch(path: str, chunk: list, wanted: tuple[str, str, str | None, str | None]) -> RawBatch:
    url_col, caption_col, uid_col, language_col = wanted
    empty: dict = {}

    def values(column: str) -> pa.Array:
        return _binary([(record or empty).get(column) for _, record, _ in chunk])

    return RawBatch(
        path=path,
        rows=np.array([row for row, _, _ in chunk], dtype=np.int64),
        url=values(url_col),
        caption=values(caption_col),
        uid=values(uid_col) if uid_col else None,
        reader_rejects=[reject for _, _, reject in chunk],
        language=values(language_col) if language_col else None,
    )


def _json_records(handle, lines_before: int) -> Iterator[tuple[int, dict | None, tuple[str, str] | None]]:
    for line_number, line in enumerate(handle, start=lines_before + 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            yield line_number, None, ("malformed_row", f"invalid JSON: {err.msg}")
            continue
        if not isinstance(record, dict):
            yield line_number, None, ("malformed_row", f"a JSON {type(record).__name__}, not an object")
            continue
        yield line_number, record, None


def _csv_records(handle, unit: PoolUnit, index: dict[str, int]):
    reader = _csv_reader(handle, unit.fmt)
    line = unit.first_row  # line numbers continue across the slices of a split file
    if unit.has_header:
        next(reader, None)
    width = len(index)
    try:
        for fields in reader:
            if not fields:
                continue
            if len(fields) != width:
                yield line + reader.line_num, None, ("malformed_row", f"{len(fields)} fields, expected {width}")
                continue
            yield line + reader.line_num, {name: fields[position] for name, position in index.items()}, None
    except csv.Error as err:
        raise UserInputError(f"{unit.path}:{line + reader.line_num}: cannot parse ({err})") from None
