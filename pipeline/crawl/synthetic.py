"""Real WARC and WAT files written from real captions, for tests and benchmarks that need crawl volume.

Each page is a request and an HTML response in the WARC file and, in the WAT file, the metadata records Common
Crawl would derive from them (the response's under Envelope -> Payload-Metadata -> HTTP-Response-Metadata ->
HTML-Metadata: Head with Base, Metas and Scripts, and Links, `IMG@/src` among navigation `A@/href` links, as on
real pages). Image srcs come in the forms pages use: absolute, protocol-relative, root-relative, relative to a
<base href>, and some links that must not become rows (no alt, data: URIs). Byte-identical per seed.
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
NAVIGATION_LINKS = 60  # <a href> per page besides the images: menus, footers, related articles
_METAS = (("viewport", "width=device-width, initial-scale=1"), ("robots", "index, follow"),
          ("description", "{title}"), ("og:type", "article"), ("og:title", "{title}"), ("twitter:card", "summary"),
          ("generator", "WordPress 6.4"), ("theme-color", "#ffffff"))
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


def _title(page: SyntheticPage) -> str:
    return next((alt for _, alt in page.images if alt), "page")


def _navigation(page: SyntheticPage) -> list[tuple[str, str]]:
    return [(f"/section/{index}/", f"Section {index}: {_title(page)[:40]}") for index in range(NAVIGATION_LINKS)]


def _html(page: SyntheticPage) -> bytes:
    title = html.escape(_title(page))
    head = "".join(f'<meta name="{name}" content="{html.escape(content.format(title=title))}">'
                   for name, content in _METAS)
    head += f'<base href="{html.escape(page.base_href)}">' if page.base_href else ""
    head += "".join(f'<script src="/static/js/bundle-{index}.js"></script>' for index in range(5))
    navigation = "".join(f'<li><a href="{href}">{html.escape(text)}</a></li>\n' for href, text in _navigation(page))
    tags = "".join(f'<figure><img src="{html.escape(src)}"' + (f' alt="{html.escape(alt)}"' if alt is not None
                                                                 else "")
                   + f' width="320"><figcaption>{html.escape(alt or "")}</figcaption></figure>\n'
                   f'<p>{html.escape(alt or "")} {title}</p>\n' for src, alt in page.images)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>{head}</head>\n'
            f'<body><nav><ul>{navigation}</ul></nav>\n<main>{tags}</main></body></html>\n').encode("utf-8")


def wat_json(page: SyntheticPage, content_length: int) -> bytes:
    title = _title(page)
    head = {"Title": title, **({"Base": page.base_href} if page.base_href else {}),
            "Metas": [{"name": name, "content": content.format(title=title)} for name, content in _METAS],
            "Scripts": [{"path": "SCRIPT@/src", "url": f"/static/js/bundle-{index}.js"} for index in range(5)]}
    links = [{"path": "A@/href", "url": href, "text": text} for href, text in _navigation(page)]
    links += [{"path": "IMG@/src", "url": src, **({"alt": alt} if alt is not None else {})}
              for src, alt in page.images]
    response = {"Response-Message": {"Version": "HTTP/1.1", "Status": "200", "Reason": "OK"},
                "Headers": {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(content_length),
                            "Server": "nginx", "Cache-Control": "max-age=600", "Vary": "Accept-Encoding"},
                "HTML-Metadata": {"Head": head, "Links": links}}
    envelope = {"WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Target-URI": page.url,
                                         "WARC-Date": CRAWL_DATE},
                "Payload-Metadata": {"Actual-Content-Type": "application/http; msgtype=response",
                                     "HTTP-Response-Metadata": response}}
    return json.dumps({"Container": {"Compressed": True}, "Envelope": envelope}, ensure_ascii=False).encode()


def _request(page: SyntheticPage) -> tuple[bytes, bytes]:
    """The page's HTTP request, and its WAT metadata record (which carries no links)."""
    host = page.url.split("/")[2]
    request = (f"GET /{page.url.split('/', 3)[3]} HTTP/1.1\r\nHost: {host}\r\n"
               f"User-Agent: CCBot/2.0 (https://commoncrawl.org/faq/)\r\nAccept: text/html\r\n\r\n").encode()
    envelope = {"WARC-Header-Metadata": {"WARC-Type": "request", "WARC-Target-URI": page.url},
                "Payload-Metadata": {"Actual-Content-Type": "application/http; msgtype=request",
                                     "HTTP-Request-Metadata": {"Request-Message": {"Method": "GET"},
                                                               "Headers": {"Host": host}}}}
    return request, json.dumps({"Container": {"Compressed": True}, "Envelope": envelope}).encode()


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
    """The pages as WARC requests and responses in `warc` and as their WAT metadata records in `wat`."""
    draw = random.Random(seed)
    with open(warc, "wb") as warc_file, open(wat, "wb") as wat_file:
        for page in pages:
            request, request_json = _request(page)
            warc_file.write(warc_record(WarcRecordType.request, page.url, "application/http; msgtype=request",
                                        request, draw))
            wat_file.write(warc_record(WarcRecordType.metadata, page.url, "application/json", request_json, draw))
            body = _html(page)
            response = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(body)) + body
            warc_file.write(warc_record(WarcRecordType.response, page.url, "application/http; msgtype=response",
                                        response, draw))
            wat_file.write(warc_record(WarcRecordType.metadata, page.url, "application/json",
                                       wat_json(page, len(body)), draw))
