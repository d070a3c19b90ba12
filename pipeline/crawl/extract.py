"""One crawl file, read as a stream: every image link of every page, as link rows and rejected links.

A WAT metadata record (JSON) or a WARC HTML response is a page; its <img> links with alt text become rows.
Whatever goes wrong is counted: per link (the reasons of `pipeline.crawl.links`), per record (not HTML, JSON
that does not parse, a cut-short record) and per file (not a WARC at all, or unreadable past some record).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fastwarc.warc import ArchiveIterator, WarcRecordType

from pipeline.crawl.files import open_stream
from pipeline.crawl.links import LinkLimits, finish_links, page_base
from pipeline.crawl.pages import Page, PageError, may_describe_page, page_from_html, page_from_wat
from pipeline.hashing import content_uids
from pipeline.run.directory import REJECT_SCHEMA
from pipeline.text.langid import identify_all

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


def _page_url(page: Page, record) -> str:
    """The url the page's record names (a WAT record's JSON), else its WARC header's WARC-Target-URI."""
    return (page.url or record.headers.get("WARC-Target-URI") or "").strip().strip("<>")


def _mime(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _page(record) -> Page | None:
    """The record's page, or None for a record about no HTML page (counted `not_html`: a WAT request's metadata,
    warcinfo, a body that is not HTML)."""
    payload = record.reader.read()
    if len(payload) < record.content_length:
        raise PageError("truncated_record", f"record holds {len(payload)} of its {record.content_length} bytes")
    if record.record_type == WarcRecordType.metadata:
        if not may_describe_page(payload):
            return None
        try:
            return page_from_wat(payload)
        except PageError:  # the Content-Type is read only here: a header lookup costs a microsecond a page
            if _mime(record.headers.get("Content-Type")) != "application/json":
                return None  # metadata of another kind (a WARC's own text/anvl records), not broken WAT JSON
            raise
    mime = _mime(record.http_content_type if record.is_http else record.headers.get("Content-Type"))
    if mime not in HTML_TYPES:
        return None
    return page_from_html(payload, record.http_charset if record.is_http else None)


@dataclass
class _PageBatch:
    """Pages read since the last batch was handed on: per page its url, base and offset, and all their links."""

    urls: list[str] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    link_counts: list[int] = field(default_factory=list)
    srcs: list[str] = field(default_factory=list)
    alts: list[str | None] = field(default_factory=list)
    titles: list[str | None] = field(default_factory=list)

    def add(self, page: Page, page_url: str, offset: int) -> None:
        self.urls.append(page_url)
        self.bases.append(page_base(page_url, page.base_href))
        self.offsets.append(offset)
        self.link_counts.append(len(page.srcs))
        self.srcs += page.srcs
        self.alts += page.alts
        self.titles += page.titles

    def tables(self, location: str, config: ExtractConfig) -> tuple[pa.Table, pa.Table]:
        """(link rows, rejected links), every link of the batch in one or the other."""
        counts = np.array(self.link_counts, dtype=np.int64)
        page_of_link = np.repeat(np.arange(len(counts)), counts)
        link_index = (np.arange(len(page_of_link)) - np.repeat(np.cumsum(counts) - counts, counts)).astype(np.int32)
        finished = finish_links(self.srcs, self.alts, page_of_link, self.bases, config.limits)
        kept, rejected = finished.kept, ~finished.kept
        page_urls, offsets = pa.array(self.urls, pa.string()), pa.array(self.offsets, pa.int64())
        kept_pages, rejected_pages = pa.array(page_of_link[kept]), pa.array(page_of_link[rejected])
        urls, captions = finished.url, finished.caption
        languages, scores = identify_all(captions.to_pylist()) if config.language_id else (None, None)
        titles = pa.array(self.titles, pa.string()).filter(pa.array(kept)) if config.titles else None
        links = pa.table({
            "uid": content_uids(urls, captions),
            "url": urls, "caption": captions, "title": _or_nulls(titles, len(urls)),
            "page_url": page_urls.take(kept_pages), "source_file": _repeated(location, len(urls)),
            "record_offset": offsets.take(kept_pages), "link_index": link_index[kept],
            "language": _or_nulls(languages, len(urls)), "language_score": _or_nulls(scores, len(urls), pa.float32()),
        }, schema=LINK_SCHEMA)
        rejects = pa.table({
            "uid": pa.nulls(len(rejected_pages), pa.string()), "reason": finished.reason,
            "detail": pc.binary_join_element_wise(page_urls.take(rejected_pages),
                                                  pa.array(link_index[rejected].astype(str)), " img "),
            "source_file": _repeated(location, len(rejected_pages)), "source_row": offsets.take(rejected_pages),
            "preview": [self.srcs[index][:200] for index in np.flatnonzero(rejected)],
        }, schema=REJECT_SCHEMA)
        return links, rejects


def _repeated(text: str, length: int) -> pa.Array:
    """`text` `length` times, taken from a one-value array rather than converted from a list of references."""
    return pa.array([text], pa.string()).take(np.zeros(length, np.int32))


def _or_nulls(values, length: int, kind: pa.DataType | None = None):
    return pa.nulls(length, kind or pa.string()) if values is None else values


class FileExtraction:
    """Iterate `batches()` for (links, rejects) tables; `report` is complete once they are exhausted."""

    def __init__(self, location: str, config: ExtractConfig = ExtractConfig()):
        self.location, self.config = location, config
        self.report = FileReport(location)
        self._pages = _PageBatch()

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
                    self._pages.add(page, _page_url(page, record), offset)
                    report.links += len(page.srcs)
                    if len(self._pages.srcs) >= BATCH_LINKS:
                        yield self._flush()
        except OSError as error:
            if offset is None:
                report.error = f"{self.location}: {error}"
            else:
                report.stopped = f"after the record at offset {offset}: {error}"
        yield self._flush()

    def _flush(self) -> tuple[pa.Table, pa.Table]:
        batch, self._pages = self._pages, _PageBatch()
        return batch.tables(self.location, self.config)
