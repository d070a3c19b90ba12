"""Benchmark of crawl extraction on one core, each figure next to its baseline in the same run.

    make bench            (python -m bench.crawl [--links 200000])

- WAT extraction (pipeline.crawl.extract.FileExtraction, language identification off) in records/s and pairs/s,
  next to a bare fastwarc loop that reads the same file's record payloads and does nothing else: the extraction's
  cost over that loop is the JSON parsing, url resolution and row building it adds (goal: at most 3x).
- Language identification (fastText lid.176, compact) on its own: microseconds per caption.
- WARC extraction (HTML parsed by resiliparse) in pages/s, next to the same bare loop over the WARC file.

The files are real WARC/WAT files written from the real captions in ../shared/data (pipeline.crawl.synthetic):
pages of 8 images with alt text plus a spacer image without.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from operator import itemgetter
from pathlib import Path

import pyarrow.parquet as pq
from fastwarc.warc import ArchiveIterator

from pipeline.crawl.extract import ExtractConfig, FileExtraction
from pipeline.crawl.synthetic import pages_from_captions, write_crawl
from pipeline.text.langid import identify_all

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "bench" / "out"


def real_captions(count: int) -> list[str]:
    """count captions: the real ones of laion_style_10k and CC3M's validation split, repeated as needed."""
    laion = [text for text in pq.read_table(SHARED / "captions" / "laion_style_10k.parquet",
                                            columns=["TEXT"]).column("TEXT").to_pylist() if text and text.strip()]
    with open(SHARED / "captions" / "cc3m_val.tsv", encoding="utf-8") as lines:
        captions = laion + [line.split("\t")[0] for line in lines]
    return [captions[index % len(captions)] for index in range(count)]


def bare_loop(path: Path) -> tuple[float, int]:
    """Seconds to read every record's payload with fastwarc, and the records read."""
    started, records = time.perf_counter(), 0
    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream, parse_http=True, verify_digests=False):
            record.reader.read()
            records += 1
    return time.perf_counter() - started, records


def extraction(path: Path, config: ExtractConfig) -> tuple[float, int, int]:
    """Seconds to extract the file, pairs found, pages read. Each batch is let go once counted, as the crawl job
    lets it go once written."""
    started, pairs = time.perf_counter(), 0
    run = FileExtraction(str(path), config)
    for links, _ in run.batches():
        pairs += len(links)
    return time.perf_counter() - started, pairs, run.report.records["page"]


def side_by_side(repeats: int, loop, extract):
    """The fastest of a few runs of each, taken in turns so that both see the same moments of the machine."""
    loops, extractions = [], []
    for _ in range(repeats):
        loops.append(loop())
        extractions.append(extract())
    return min(loops, key=itemgetter(0)), min(extractions, key=itemgetter(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--links", type=int, default=200_000, help="image links with alt text in each file")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        warc, wat = Path(folder) / "bench.warc.gz", Path(folder) / "bench.warc.wat.gz"
        captions = real_captions(args.links)
        write_crawl(pages_from_captions(captions), warc, wat)
        no_language = ExtractConfig(language_id=False)
        results = {}
        for kind, path in (("wat", wat), ("warc", warc)):
            (loop_s, records), (extract_s, pairs, pages) = side_by_side(
                args.repeats, lambda path=path: bare_loop(path), lambda path=path: extraction(path, no_language))
            results[kind] = {"file_mb": round(path.stat().st_size / 1e6, 1), "records": records, "pages": pages,
                             "pairs": pairs, "bare_loop_s": loop_s, "extract_s": extract_s,
                             "bare_loop_records_per_s": records / loop_s, "records_per_s": records / extract_s,
                             "pages_per_s": pages / extract_s, "pairs_per_s": pairs / extract_s,
                             "cost_over_bare_loop": extract_s / loop_s}
        started = time.perf_counter()
        identify_all(captions)
        language_s = time.perf_counter() - started
        results["language_id"] = {"captions": len(captions), "seconds": language_s,
                                  "us_per_caption": language_s / len(captions) * 1e6}
    for kind in ("wat", "warc"):
        figures = results[kind]
        print(f"{kind.upper()} extraction on one core, {figures['records']:,} records ({figures['file_mb']} MB), "
              f"{figures['pairs']:,} pairs, language identification off:")
        print(f"  extraction {figures['records_per_s']:,.0f} records/s, {figures['pages_per_s']:,.0f} pages/s, "
              f"{figures['pairs_per_s']:,.0f} pairs/s; bare fastwarc loop {figures['bare_loop_records_per_s']:,.0f} "
              f"records/s: {figures['cost_over_bare_loop']:.2f}x the loop")
    language = results["language_id"]
    print(f"language identification: {language['us_per_caption']:.1f} us per caption "
          f"({language['captions']:,} captions)")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "crawl.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {OUT / 'crawl.json'}")


if __name__ == "__main__":
    main()
