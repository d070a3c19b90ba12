"""Spark binding of matching: every ingested caption against the vocabulary, in Arrow batches.

Each task also writes its matches per entry into DIR/matches/_counts, so counting is a sum of those
small parts instead of another pass over the matched rows (measured on 1M captions: 0.9 s -> 0.1 s).
Matched rows keep their url and caption beside the entry ids, so balancing is one narrow pass over
this stage's output instead of a join back to the ingested pool (measured on 1M captions: the join
and its writes were about half of the balance stage).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import SparkSession

from pipeline.errors import UserInputError
from pipeline.run.directory import REJECT_SCHEMA, REJECTS, StageResult, run_stage
from pipeline.run.stages import STAGES, fingerprints, require_upstream
from pipeline.spark.task_writes import ParquetParts, write_from_tasks
from pipeline.text import token_kernel
from pipeline.text.carried import stage_columns, with_carried
from pipeline.text.counting import COUNTS_SCHEMA, count_entries, sparse_counts
from pipeline.text.matching import Matcher, compiled_automaton_folder, match_compiled
from pipeline.text.token_automaton import TokenAutomaton
from pipeline.text.vocabulary import Vocabulary
from pipeline.text.worldwide import WorldwideMatcher

MATCH = STAGES["match"]  # its partial counts sit in a `_` folder, which readers of the matched rows skip
MATCHES_SCHEMA = pa.schema([("uid", pa.string()), ("url", pa.string()), ("caption", pa.string()),
                            ("entry_ids", pa.list_(pa.int32()))])
_ENTRY_IDS = pa.list_(pa.int32())
NO_MATCH = ("no_match", "caption matches no vocabulary entry")
# One matcher per Python worker process: workers are reused across tasks, so it is loaded or built once.
_MATCHERS: dict[tuple[str, str], TokenAutomaton | Matcher | WorldwideMatcher] = {}


def _matcher(vocab_key: str, mode: str, automaton: str | None, vocabulary_broadcast,
             ) -> TokenAutomaton | Matcher | WorldwideMatcher:
    """Worldwide: a WorldwideMatcher. Otherwise the compiled automaton the driver left in `automaton`, mapped;
    a worker that cannot see that folder (another machine) builds it into its own cache from the vocabulary,
    and one without the compiled walk (token_kernel.MISSING) matches with pyahocorasick's Matcher."""
    key = (vocab_key, mode)
    if key not in _MATCHERS:
        _MATCHERS.clear()
        if token_kernel.MISSING is None and automaton is not None and (Path(automaton) / "format.json").exists():
            _MATCHERS[key] = TokenAutomaton.load(Path(automaton))
        else:
            vocabulary: Vocabulary = vocabulary_broadcast.value
            if vocabulary.worldwide:
                _MATCHERS[key] = WorldwideMatcher(vocabulary, mode)
            elif token_kernel.MISSING is None:
                _MATCHERS[key] = TokenAutomaton.load(
                    compiled_automaton_folder(vocabulary.entries, mode, vocabulary.fingerprint))
            else:
                _MATCHERS[key] = Matcher(vocabulary.entries, mode)
    return _MATCHERS[key]


def _no_match_reasons(found: list[list[int] | None], languages: list[str | None]) -> list[tuple[str, str]]:
    return [("no_vocabulary", f"no vocabulary for the caption's language ({languages[position]})")
            if ids is None else NO_MATCH for position, ids in enumerate(found) if not ids]


def _entry_ids(matcher: TokenAutomaton | Matcher | WorldwideMatcher, mode: str, batch: pa.RecordBatch,
               ) -> tuple[pa.ListArray, list[tuple[str, str]] | None]:
    """Each caption's entry ids, and the reasons of those with none (None: all of them `no_match`)."""
    if not isinstance(matcher, WorldwideMatcher):
        captions = batch.column("caption")
        found = match_compiled(matcher, mode, captions) if isinstance(matcher, TokenAutomaton) else \
            matcher.match_arrow(captions)
        return pc.fill_null(found, pa.scalar([], _ENTRY_IDS)), None
    languages = batch.column("language").to_pylist()
    found = matcher.match_batch(batch.column("caption").to_pylist(), languages)
    return (pa.array([entry_ids or [] for entry_ids in found], _ENTRY_IDS), _no_match_reasons(found, languages))


def match_batches(vocab_key: str, vocabulary_size: int, mode: str, automaton: str | None, vocabulary_broadcast,
                  schema: pa.Schema):
    """Batches of (uid, url, caption[, language]) -> matched rows with their entry ids, and the captions that
    match nothing (or whose language has no vocabulary, worldwide) as rejects; last, the task's matches per entry.

    The vocabulary is read from the broadcast only by a worker that has no matcher for it yet and cannot map the
    driver's automaton, so a warm worker does not unpickle 500k strings again for every run of the stage."""
    def run(batches):
        matcher = _matcher(vocab_key, mode, automaton, vocabulary_broadcast)
        matches_per_entry = np.zeros(vocabulary_size, dtype=np.int64)
        for batch in batches:
            ids, reasons = _entry_ids(matcher, mode, batch)
            matched = pc.greater(pc.list_value_length(ids), 0)
            rows = pa.Table.from_batches([batch]).append_column("entry_ids", ids).select(schema.names)
            unmatched = rows.column("uid").filter(pc.invert(matched))
            reasons = reasons if reasons is not None else [NO_MATCH] * len(unmatched)
            matches_per_entry += count_entries(ids, len(matches_per_entry))
            yield {"rows": rows.filter(matched),
                   "rejects": pa.table({"uid": unmatched, "reason": [reason for reason, _ in reasons],
                                        "detail": [detail for _, detail in reasons]})}
        yield {"counts": sparse_counts(matches_per_entry)}
    return run


def run_match(spark: SparkSession, run_dir: Path, vocabulary: Vocabulary, mode: str, force: bool = False) -> dict:
    manifests = require_upstream(run_dir, MATCH.name)
    ingest = STAGES["ingest"]
    ingest_dir, upstream = ingest.path(run_dir), manifests[ingest.folder]
    config = {"mode": mode, "vocabulary": vocabulary.fingerprint, "vocabulary_size": len(vocabulary.entries),
              **({"languages": list(vocabulary.languages)} if vocabulary.worldwide else {})}

    def body(out_dir: Path) -> StageResult:
        columns = stage_columns(ingest_dir)
        if vocabulary.worldwide and "language" not in columns:
            raise UserInputError(f"{ingest_dir}: worldwide matching needs each caption's language; ingest again "
                                 f"with --worldwide (language identification) or from a pool with a language column")
        broadcast = spark.sparkContext.broadcast(vocabulary)
        # built here once, so that local workers (and any that share this disk) map it instead of building it
        automaton = None if vocabulary.worldwide or token_kernel.MISSING else \
            str(compiled_automaton_folder(vocabulary.entries, mode, vocabulary.fingerprint))
        if token_kernel.MISSING and not vocabulary.worldwide:
            print(f"warning: {token_kernel.MISSING}; matching with pyahocorasick instead (the same matches, "
                  "several times slower)", file=sys.stderr)
        schema = with_carried(MATCHES_SCHEMA, columns)
        captions = ParquetParts(spark, ingest_dir, ["uid", "url", "caption", *schema.names[len(MATCHES_SCHEMA):]])
        written = write_from_tasks(
            captions, match_batches(vocabulary.fingerprint, len(vocabulary.entries), mode, automaton, broadcast,
                                    schema),
            {"rows": (out_dir, schema), "rejects": (out_dir / REJECTS, REJECT_SCHEMA),
             "counts": (out_dir / MATCH.files["partial_counts"], COUNTS_SCHEMA)})
        broadcast.unpersist()
        return StageResult(rows_in=upstream["rows_out"], rows_out=written["rows"][None],
                           rejected=dict(written["rejects"]))

    return run_stage(run_dir, MATCH.folder, config, fingerprints(manifests), body, force=force)
