"""The compiled batch matcher (Matcher.match_arrow) side by side with pyahocorasick in one run, one core.

    make bench            (python -m bench.compiled_matcher)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench.text_curation import PRINT_PEAK_RSS_MIB, REPO, VOCAB, best_rate, pyahocorasick_bare_scan, real_pool
from pipeline.spark.session import ARROW_BATCH_ROWS
from pipeline.text.matching import Matcher, compiled_automaton_folder, metaclip_prepare, token_keys
from pipeline.text.token_automaton import CACHE_ENV, TokenAutomaton
from pipeline.vocab.entries import load_entries

COPIES = 8  # the real captions repeated, so that a timed pass is long enough to measure


def worker_rss_mib(batch: Path, folder: Path | None = None, mode: str = "") -> float:
    """Peak RSS of a fresh process that imports what a Spark match task imports (pipeline.spark.match) and reads
    one task batch of real captions (`batch`, Parquet: a task gets Arrow); given an automaton `folder`, it also
    maps it and matches the batch: no vocabulary, no pyahocorasick automaton. Without one: the baseline, what
    any such worker holds before matching."""
    code = ("import pyarrow.parquet as pq; import pipeline.spark.match;"
            "from pipeline.text.matching import match_compiled;"
            "from pipeline.text.token_automaton import TokenAutomaton;"
            f"captions = pq.read_table({str(batch)!r})['caption'];"
            + (f"match_compiled(TokenAutomaton.load({str(folder)!r}), {mode!r}, captions);" if folder else "")
            + PRINT_PEAK_RSS_MIB)
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    captions = real_pool().column("caption").to_pylist() * COPIES
    batch = pa.array(captions, pa.string())
    entries = load_entries(VOCAB)
    results: dict = {"vocabulary_entries": len(entries), "captions": len(captions)}
    with tempfile.TemporaryDirectory() as cache:
        os.environ[CACHE_ENV] = cache
        task_batch = Path(cache) / "task_batch.parquet"
        pq.write_table(pa.table({"caption": batch.slice(0, ARROW_BATCH_ROWS)}), task_batch)
        results["worker_baseline_rss_mib"] = worker_rss_mib(task_batch)
        for mode in ("metaclip", "default"):
            matcher = Matcher(entries, mode)
            keys = token_keys(entries, mode)
            started = time.perf_counter()
            TokenAutomaton.build(keys)
            results[f"{mode}_build_s"] = time.perf_counter() - started
            matcher.match_arrow(batch.slice(0, 10))  # builds and caches the automaton, compiles the kernel
            results[f"{mode}_compiled_per_s"] = best_rate(lambda m=matcher: m.match_arrow(batch), len(captions))
            if mode == "metaclip":
                prepared = [metaclip_prepare(text) for text in captions]
                results["pyahocorasick_bare_scan_per_s"] = best_rate(
                    lambda m=matcher, p=prepared: pyahocorasick_bare_scan(m, p), len(captions))
            folder = compiled_automaton_folder(entries, mode)
            results[f"{mode}_worker_rss_mib"] = worker_rss_mib(task_batch, folder, mode)
    results["metaclip_vs_bare_scan"] = results["metaclip_compiled_per_s"] / results["pyahocorasick_bare_scan_per_s"]
    print(f"compiled matcher, {len(entries):,} entries, {len(captions):,} real captions, one core:")
    print(f"  pyahocorasick bare scan (metaclip-prepared captions): {results['pyahocorasick_bare_scan_per_s']:>10,.0f}"
          " captions/s")
    for mode in ("metaclip", "default"):
        print(f"  match_arrow {mode:<8} {results[f'{mode}_compiled_per_s']:>10,.0f} captions/s   automaton built in "
              f"{results[f'{mode}_build_s']:.1f} s   worker RSS {results[f'{mode}_worker_rss_mib']:,.0f} MiB")
    print(f"  worker RSS: a fresh process that imports a match task's modules and reads a task batch of "
          f"{ARROW_BATCH_ROWS:,} real captions, then maps the automaton and matches them; without matching "
          f"{results['worker_baseline_rss_mib']:,.0f} MiB")
    print(f"  metaclip: {results['metaclip_vs_bare_scan']:.2f}x the bare scan (goal >= 4x, >= 1,000,000/s; "
          "default >= 500,000/s)")
    path = REPO / "bench" / "out" / "compiled_matcher.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
