"""Real WARC and WAT files written from real captions, for tests and benchmarks that need crawl volume.

Each page is an HTML response in the WARC file and, in the WAT file, the metadata record Common Crawl would
derive from it (Envelope -> Payload-Metadata -> HTTP-Response-Metadata -> HTML-Metadata: Head.Base and Links
with `IMG@/src`). Image srcs come in the forms pages use: absolute, protocol-relative, root-relative, relative
to a <base href>, and some links that must not become rows (no alt, data: URIs). Byte-identical per seed.
"""

from __future__ import annotations

import gzip
import html
import io
import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

from fastwarc.warc import WarcRecord, WarcRecordType

CRAWL_DATE = "2024-05-18T01:58:10Z"
_SRC_FORMS = ("https://images.example.org/full/{n}.jpg", "//cdn.example.net/thumbs/{n}.png", "/media/{n}.jpg",
              "photos/{n}.webp", "../shared/{n}.jpg?size=large#view")


@dataclass(frozen=True)
class SyntheticPage:
    url: str
    base_href: str | None
    images: list[tuple[str, str | None]]  # (src, alt); alt None: no alt attribute


def pages_from_captions(captions: list[str], seed: int = 0, images_per_page: int = 8) -> list[SyntheticPage]:
    """Pages whose images carry the captions as alt text, with a few links that carry none."""
    draw = random.Random(seed)
    pages, position = [], 0
    while position < len(captions):
        number = len(pages)
        url = f"https://site{number % 97}.example.com/articles/{number}/index.html"
        base = "https://static.example.com/assets/" if number % 5 == 0 else None
        images: list[tuple[str, str | None]] = []
        for caption in captions[position:position + images_per_page]:
            form = _SRC_FORMS[draw.randrange(len(_SRC_FORMS))]
            images.append((form.format(n=f"{number}-{len(images)}"), caption))
        position += images_per_page
        images.append((f"/spacer-{number}.gif", None))
        if number % 3 == 0:
            images.append(("data:image/gif;base64,R0lGODlhAQABAAAAACw=", "a pixel"))
        pages.append(SyntheticPage(url, base, images))
    return pages


def _html(page: SyntheticPage) -> bytes:
    head = f'<base href="{html.escape(page.base_href)}">' if page.base_href else ""
    tags = "".join(f'<p><img src="{html.escape(src)}"' + (f' alt="{html.escape(alt)}"' if alt is not None else "")
                   + ' width="320"></p>\n' for src, alt in page.images)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>page</title>{head}</head>\n'
            f'<body><a href="/about">about</a>\n{tags}</body></html>\n').encode("utf-8")


def _wat_json(page: SyntheticPage) -> bytes:
    head = {"Title": "page", **({"Base": page.base_href} if page.base_href else {})}
    links = [{"path": "A@/href", "url": "/about", "text": "about"}]
    links += [{"path": "IMG@/src", "url": src, **({"alt": alt} if alt is not None else {})}
              for src, alt in page.images]
    envelope = {"WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Target-URI": page.url},
                "Payload-Metadata": {"Actual-Content-Type": "application/http; msgtype=response",
                                     "HTTP-Response-Metadata": {"Response-Message": {"Status": "200"},
                                                                "HTML-Metadata": {"Head": head, "Links": links}}}}
    return json.dumps({"Container": {"Compressed": True}, "Envelope": envelope}, ensure_ascii=False).encode()


def warc_record(kind: WarcRecordType, target: str, content_type: str, content: bytes, draw: random.Random) -> bytes:
    record = WarcRecord()
    record.init_headers(kind, record_urn=str(uuid.UUID(int=draw.getrandbits(128), version=4)).encode())
    record.headers["WARC-Date"] = CRAWL_DATE
    record.headers["WARC-Target-URI"] = target
    record.headers["Content-Type"] = content_type
    record.set_bytes_content(content)
    member = io.BytesIO()
    record.write(member)
    return gzip.compress(member.getvalue(), mtime=0)  # one gzip member per record, as Common Crawl writes them


def write_crawl(pages: list[SyntheticPage], warc: Path, wat: Path, seed: int = 0) -> None:
    """The pages as WARC responses in `warc` and as WAT metadata records in `wat`."""
    draw = random.Random(seed)
    with open(warc, "wb") as warc_file, open(wat, "wb") as wat_file:
        for page in pages:
            body = _html(page)
            response = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(body)) + body
            warc_file.write(warc_record(WarcRecordType.response, page.url, "application/http; msgtype=response",
                                    response, draw))
            wat_file.write(warc_record(WarcRecordType.metadata, page.url, "application/json", _wat_json(page), draw))
