"""Benchmark of worldwide matching against English-only matching, side by side in one run.

    make bench            (python -m bench.worldwide [--captions 20000])

- English-only: the shipped 500k-entry vocabulary's Matcher over real English captions (LAION-style, CC3M).
- Worldwide: a WorldwideMatcher with every shipped language loaded (English's 500k and 43 others' 20k each, one
  automaton per language, built once), first over the same English captions, then over real captions in five
  languages (Multi30k en/de/fr/cs, Flickr8k-CN zh), each caption matched in its own language. Goal: captions/s per
  core within 1.3x of English-only matching.
- Memory: peak RSS of a fresh process that builds the English-only matcher, and of one that builds every
  language's: what a Spark worker holds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.text_curation import real_pool
from pipeline.experiments.multilingual import FILES, multilingual_captions
from pipeline.text.matching import Matcher
from pipeline.text.vocabulary import WORLDWIDE_METADATA, load_vocabulary
from pipeline.text.worldwide import WorldwideMatcher
from pipeline.vocab.entries import SHIPPED_VOCABULARY

OUT = Path(__file__).resolve().parent / "out"


def mixed_captions(per_language: int) -> tuple[list[str], list[str]]:
    captions, languages = [], []
    for language in FILES:
        found = multilingual_captions(language, per_language)
        captions += found
        languages += [language] * len(found)
    return captions, languages


def best_seconds(function, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def worker_rss_mib(worldwide: bool) -> dict[str, float]:
    """Peak RSS while a fresh process builds the matcher(s) a worker would hold, and its RSS once they are built."""
    build = (f"v = load_vocabulary({str(SHIPPED_VOCABULARY)!r}, {str(WORLDWIDE_METADATA)!r});"
             "m = WorldwideMatcher(v, 'default'); [m._matcher(language) for language in v.languages]"
             if worldwide else f"v = load_vocabulary({str(SHIPPED_VOCABULARY)!r}); m = Matcher(v.entries)")
    code = ("import gc, re; from pipeline.text.vocabulary import load_vocabulary;"
            "from pipeline.text.matching import Matcher; from pipeline.text.worldwide import WorldwideMatcher;"
            f"{build}; gc.collect();"
            "status = open('/proc/self/status').read();"
            "print(*(int(re.search(field + r':\\s+(\\d+)', status).group(1)) / 1024 for field in ('VmHWM', 'VmRSS')))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    peak, built = map(float, output.split())
    return {"peak": peak, "built": built}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions", type=int, default=20_000, help="captions per measurement")
    args = parser.parse_args()
    english = real_pool().column("caption").to_pylist()[:args.captions]
    mixed, languages = mixed_captions(args.captions // len(FILES))
    vocabulary = load_vocabulary(SHIPPED_VOCABULARY, WORLDWIDE_METADATA)
    started = time.perf_counter()
    english_only = Matcher(vocabulary.entries[:vocabulary.starts[1]])
    english_build = time.perf_counter() - started
    worldwide = WorldwideMatcher(vocabulary, "default")
    started = time.perf_counter()
    for language in vocabulary.languages:
        worldwide._matcher(language)
    worldwide_build = time.perf_counter() - started
    english_s = best_seconds(lambda: english_only.match_batch(english))
    worldwide_english_s = best_seconds(lambda: worldwide.match_batch(english, ["en"] * len(english)))
    worldwide_mixed_s = best_seconds(lambda: worldwide.match_batch(mixed, languages))
    results = {
        "languages_loaded": len(vocabulary.languages), "entries": len(vocabulary.entries),
        "english_only_captions_per_s": len(english) / english_s,
        "worldwide_english_captions_per_s": len(english) / worldwide_english_s,
        "worldwide_mixed_captions_per_s": len(mixed) / worldwide_mixed_s,
        "slowdown_same_captions": worldwide_english_s / english_s,
        "slowdown_mixed_captions": (worldwide_mixed_s / len(mixed)) / (english_s / len(english)),
        "build_s": {"english_only": english_build, "all_languages": worldwide_build},
        "rss_mib": {"english_only": worker_rss_mib(False), "all_languages": worker_rss_mib(True)},
    }
    print(f"worldwide matching, {results['languages_loaded']} languages loaded ({results['entries']:,} entries), "
          f"one core:")
    print(f"  English-only matcher on {len(english):,} English captions: "
          f"{results['english_only_captions_per_s']:,.0f} captions/s")
    print(f"  worldwide matcher, same captions: {results['worldwide_english_captions_per_s']:,.0f} captions/s "
          f"({results['slowdown_same_captions']:.2f}x the time)")
    print(f"  worldwide matcher, {len(mixed):,} captions in 5 languages: "
          f"{results['worldwide_mixed_captions_per_s']:,.0f} captions/s ({results['slowdown_mixed_captions']:.2f}x "
          f"the time per caption; goal <= 1.3x)")
    rss = results["rss_mib"]
    print(f"  automata built in {english_build:.1f} s (English) and {worldwide_build:.1f} s (all languages); a "
          f"worker's RSS once built (peak while building): English-only {rss['english_only']['built']:,.0f} MiB "
          f"({rss['english_only']['peak']:,.0f}), every language {rss['all_languages']['built']:,.0f} MiB "
          f"({rss['all_languages']['peak']:,.0f})")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "worldwide.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
