"""One crawl file, read as a stream: every image link of every page, as link rows and rejected links.

A WAT metadata record (JSON) or a WARC HTML response is a page; its <img> links with alt text become rows.
Whatever goes wrong is counted: per link (the reasons of `pipeline.crawl.links`), per record (not HTML, JSON
that does not parse, a cut-short record) and per file (not a WARC at all, or unreadable past some record).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Iterator

import pyarrow as pa
from fastwarc.warc import ArchiveIterator, WarcRecordType

from pipeline.crawl.files import open_stream
from pipeline.crawl.langid import identify_all
from pipeline.crawl.links import LinkLimits, PageUrls, clean_caption
from pipeline.crawl.pages import Page, PageError, page_from_html, page_from_wat
from pipeline.hashing import content_uid
from pipeline.run.directory import REJECT_SCHEMA

FORMATS = ("auto", "wat", "warc")
_RECORD_TYPES = {"wat": WarcRecordType.metadata,
                 "warc": WarcRecordType.response | WarcRecordType.resource}
_RECORD_TYPES["auto"] = _RECORD_TYPES["wat"] | _RECORD_TYPES["warc"]
HTML_TYPES = ("text/html", "application/xhtml+xml")
LINK_SCHEMA = pa.schema([
    ("uid", pa.string()),
    ("url", pa.string()),
    ("caption", pa.string()),
    ("title", pa.string()),
    ("page_url", pa.string()),
    ("source_file", pa.string()),
    ("record_offset", pa.int64()),
    ("link_index", pa.int32()),
    ("language", pa.string()),
    ("language_score", pa.float32()),
])
BATCH_LINKS = 20_000  # links per batch handed on: bounds a task's memory on files with millions of links


@dataclass(frozen=True)
class ExtractConfig:
    format: str = "auto"  # which records are pages: WAT metadata, WARC HTML responses, or both
    titles: bool = False  # keep the <img> title too
    language_id: bool = True  # identify each caption's language (off: the language columns are null)
    limits: LinkLimits = LinkLimits()


@dataclass
class FileReport:
    """What reading one file gave: records by outcome, links found, and why reading stopped early if it did."""

    source_file: str
    records: Counter = field(default_factory=Counter)
    links: int = 0
    error: str | None = None  # the file could not be read at all: it is retried with --retry-failed
    stopped: str | None = None  # reading ended before the file did (a cut-short or malformed record)

    @property
    def outcome(self) -> str:
        if self.error:
            return "failed"
        if self.stopped:
            return "stopped"
        return "read" if self.records else "empty"

    def as_row(self) -> dict:
        return {**asdict(self), "records": dict(self.records), "outcome": self.outcome}


def _target_uri(record) -> str:
    return (record.headers.get("WARC-Target-URI") or "").strip().strip("<>")


def _mime(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _page(record) -> Page | None:
    """The record's page, or None for a record about no HTML page (counted `not_html`: a WAT request's metadata,
    warcinfo, a body that is not HTML)."""
    payload = record.reader.read()
    if len(payload) < record.content_length:
        raise PageError("truncated_record", f"record holds {len(payload)} of its {record.content_length} bytes")
    if record.record_type == WarcRecordType.metadata:
        if _mime(record.headers.get("Content-Type")) != "application/json":
            return None
        return page_from_wat(payload)
    mime = _mime(record.http_content_type if record.is_http else record.headers.get("Content-Type"))
    if mime not in HTML_TYPES:
        return None
    return page_from_html(payload, record.http_charset if record.is_http else None)


def _append(columns: dict[str, list], **values) -> None:
    for name, value in values.items():
        columns[name].append(value)


class FileExtraction:
    """Iterate `batches()` for (links, rejects) tables; `report` is complete once they are exhausted."""

    def __init__(self, location: str, config: ExtractConfig = ExtractConfig()):
        self.location, self.config = location, config
        self.report = FileReport(location)
        self._links: dict[str, list] = {name: [] for name in LINK_SCHEMA.names}
        self._rejects: dict[str, list] = {name: [] for name in REJECT_SCHEMA.names}

    def batches(self) -> Iterator[tuple[pa.Table, pa.Table]]:
        report, offset = self.report, None
        try:
            with open_stream(self.location) as stream:
                for record in ArchiveIterator(stream, record_types=_RECORD_TYPES[self.config.format],
                                              parse_http=True, verify_digests=False):
                    offset = record.stream_pos
                    try:
                        page = _page(record)
                    except PageError as problem:
                        report.records[problem.reason] += 1
                        if problem.reason == "truncated_record":
                            report.stopped = f"record at offset {offset}: {problem}"
                            break
                        continue
                    if page is None:
                        report.records["not_html"] += 1
                        continue
                    report.records["page"] += 1
                    if page.note:
                        report.records[page.note] += 1
                    self._add_page(page, _target_uri(record), offset)
                    if len(self._links["uid"]) + len(self._rejects["reason"]) >= BATCH_LINKS:
                        yield self._flush()
        except OSError as error:
            if offset is None:
                report.error = f"{self.location}: {error}"
            else:
                report.stopped = f"after the record at offset {offset}: {error}"
        yield self._flush()

    def _add_page(self, page: Page, page_url: str, offset: int) -> None:
        limits, source, links, rejects = self.config.limits, self.location, self._links, self._rejects
        urls = PageUrls(page_url, page.base_href, limits)
        self.report.links += len(page.images)
        for index, image in enumerate(page.images):
            caption, reason = clean_caption(image.alt, limits)
            url = None
            if reason is None:
                url, reason = urls.resolve(image.src)
            if reason is not None:
                _append(rejects, uid=None, reason=reason, detail=f"{page_url} img {index}", source_file=source,
                        source_row=offset, preview=image.src[:200])
                continue
            _append(links, uid=content_uid(url.encode(), caption.encode()), url=url, caption=caption,
                    title=image.title if self.config.titles else None, page_url=page_url, source_file=source,
                    record_offset=offset, link_index=index)

    def _flush(self) -> tuple[pa.Table, pa.Table]:
        links = self._links
        if self.config.language_id:
            links["language"], links["language_score"] = identify_all(links["caption"])
        else:
            links["language"] = links["language_score"] = [None] * len(links["caption"])
        tables = pa.table(links, schema=LINK_SCHEMA), pa.table(self._rejects, schema=REJECT_SCHEMA)
        for columns in (self._links, self._rejects):
            for values in columns.values():
                values.clear()
        return tables
