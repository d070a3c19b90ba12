"""The extraction's folder besides the pool's Parquet parts: `_links` (every link that could be a caption, before
filters and duplicates), `_files` (one report per crawl file) and `_rejects`; and its summary for people."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

LINKS, FILES = "_links", "_files"
FILE_SCHEMA = pa.schema([("source_file", pa.string()), ("outcome", pa.string()), ("report", pa.string())])
LISTED_FILES = 20  # files the summary shows one by one


def file_reports(folder: Path) -> list[dict]:
    """The per-file reports in a `_files` folder, by file name."""
    table = pq.read_table(folder, schema=FILE_SCHEMA).sort_by("source_file")
    return [json.loads(report) for report in table.column("report").to_pylist()]


def format_extraction(out: Path, manifest: dict) -> str:
    """Per file what was found, the totals, and where the pool is."""
    out = Path(out).resolve()
    lines = [f"{'file':<48} {'outcome':<8} {'pages':>7} {'links':>9}"]
    reports = file_reports(out / FILES)
    for report in reports[:LISTED_FILES]:
        name = report["source_file"] if len(report["source_file"]) <= 48 else "..." + report["source_file"][-45:]
        lines.append(f"{name:<48} {report['outcome']:<8} {report['records'].get('page', 0):>7,} "
                     f"{report['links']:>9,}")
        if report["stopped"] or report["error"]:
            lines.append(f"  {report['error'] or report['stopped']}")
    if len(reports) > LISTED_FILES:
        lines.append(f"... and {len(reports) - LISTED_FILES:,} more files ({out / FILES})")
    rejected = ", ".join(f"{reason} {count:,}" for reason, count in manifest["rejected"].items()) or "none"
    state = "skipped (current)" if manifest.get("skipped") else f"{manifest['wall_seconds']:.1f}s"
    lines.append(f"links {manifest['rows_in']:,} -> pool {manifest['rows_out']:,}; rejected: {rejected}  [{state}]")
    lines.append(f"records: {', '.join(f'{kind} {count:,}' for kind, count in manifest['records'].items()) or 'none'}")
    lines.append(f"languages: {', '.join(f'{code} {count:,}' for code, count in manifest['languages'].items())}")
    lines.append(f"pool: {out}")
    return "\n".join(lines)
