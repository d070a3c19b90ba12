"""The compiled scan of WAT records (native/metacurate_wat.pyx) decides only what msgspec's reading would decide
the same way, and leaves the rest (broken JSON, odd shapes) to it."""

import json
import random

import metacurate_wat

from pipeline.crawl import pages
from pipeline.crawl.pages import PageError
from pipeline.crawl.synthetic import pages_from_captions, wat_json


def outcome(read, payload: bytes):
    """What a reading makes of a record: the page's parts, None, or the reason it is rejected."""
    try:
        page = read(payload)
    except PageError as error:
        return error.reason
    return page and (page.base_href, page.url, page.srcs, page.alts, page.titles)


def mutated(payloads: list[bytes], count: int, seed: int = 0) -> list[bytes]:
    """Records with a few bytes deleted, inserted or replaced (JSON's own characters, bytes that are not UTF-8,
    control characters), or cut short."""
    draw, alphabet = random.Random(seed), b'{}[]",:\\ 0123456789eE.-+untrfalsx\xff\xc3\xa9\x01/'
    records = []
    for _ in range(count):
        record = bytearray(draw.choice(payloads))
        for _ in range(draw.randint(1, 3)):
            at, kind = draw.randrange(len(record)), draw.randrange(4)
            if kind == 0:
                del record[at]
            elif kind == 1:
                record.insert(at, draw.choice(alphabet))
            elif kind == 2:
                record[at] = draw.choice(alphabet)
            else:
                del record[max(at, 1):]
        records.append(bytes(record))
    return records


def test_the_compiled_scan_decides_as_msgspec_on_thousands_of_mutated_records(captions):
    escaped = ["a cat \U0001f600 on a \"mat\"", "gr\u00f6\u00dfe \\ bild", "\u732b\u306e\u5199\u771f", "tab\there"]
    payloads = [json.dumps(json.loads(wat_json(page, 100)), ensure_ascii=number % 2 == 0).encode()
                for number, page in enumerate(pages_from_captions(captions[:40] + escaped * 3, images_per_page=4))]
    decided, well_formed = 0, set(payloads)
    for payload in payloads + mutated(payloads, 4000):
        found = metacurate_wat.image_links(payload, pages.WAT_IMAGE_PATH.encode())
        if found[0] == metacurate_wat.UNDECIDED:
            assert payload not in well_formed  # every well-formed record is decided by the scan
            continue
        decided += 1
        scanned = found[1:] if found[0] == metacurate_wat.PAGE else None
        assert scanned == outcome(pages._page_from_wat_by_msgspec, payload), payload
    assert decided > 500  # the mutations that leave valid JSON: a changed digit or letter, a cut in a string
