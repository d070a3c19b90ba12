"""Spark binding of crawl extraction: one task per crawl file, then the pool: filters and exact duplicates.

The tasks read their files themselves (task_writes) and write every link they found: those that could be
captions to `_links`, the others to the rejects, with one report row per file in `_files`. The pool is then
`_links` less the language and text filters and less repeated (url, caption) pairs, the first by (file, record
offset, position on the page) kept. `--retry-failed` rereads only the files that failed and takes the other
files' links from the earlier output, so the pool is what one clean run would have made.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pipeline.crawl.extract import LINK_SCHEMA, ExtractConfig, FileExtraction
from pipeline.crawl.files import is_local
from pipeline.crawl.output import FILE_SCHEMA, FILES, LINKS, file_reports
from pipeline.errors import UserInputError
from pipeline.run.directory import REJECT_SCHEMA, REJECTS, StageResult, file_identity, read_manifest, run_stage
from pipeline.spark.outputs import work_dir, write_split
from pipeline.spark.session import spread
from pipeline.spark.task_writes import write_from_tasks

POOL_COLUMNS = [name for name in LINK_SCHEMA.names if name != "link_index"]
POOL_REASONS = ("language_filtered", "too_few_words", "too_short", "duplicate")  # decided over _links, not per file


@dataclass(frozen=True)
class CrawlConfig:
    extract: ExtractConfig = ExtractConfig()
    languages: tuple[str, ...] = ()  # keep captions in these languages only (empty: all)
    min_words: int = 0  # DataComp-style text filters, off by default
    min_chars: int = 0


def _extract(config: ExtractConfig):
    def run(batches):
        for batch in batches:
            for location in batch.column("file").to_pylist():
                extraction = FileExtraction(location, config)
                for links, rejects in extraction.batches():
                    yield {"links": links, "rejects": rejects}
                report = extraction.report.as_row()
                yield {"files": pa.table({"source_file": [location], "outcome": [report["outcome"]],
                                          "report": [json.dumps(report, sort_keys=True)]}, schema=FILE_SCHEMA)}
    return run


def _filter_reasons(config: CrawlConfig) -> tuple:
    """(reason, detail) columns naming the first filter a caption fails; null where it passes them all."""
    words = F.size(F.split(F.trim(F.col("caption")), r"\s+"))
    checks = []
    if config.languages:
        checks.append((~F.col("language").isin(list(config.languages)), "language_filtered",
                       F.concat(F.lit("language "), F.col("language"))))
    if config.min_words:
        checks.append((words < config.min_words, "too_few_words", F.concat(words.cast("string"), F.lit(" words"))))
    if config.min_chars:
        length = F.length("caption")
        checks.append((length < config.min_chars, "too_short", F.concat(length.cast("string"), F.lit(" characters"))))
    reason, detail = F.lit(None).cast("string"), F.lit(None).cast("string")
    for failed, name, why in reversed(checks):
        reason, detail = F.when(failed, F.lit(name)).otherwise(reason), F.when(failed, why).otherwise(detail)
    return reason, detail


def pool_rows(links: DataFrame, config: CrawlConfig) -> DataFrame:
    """links with a `reason` on the captions the filters drop and on each repeat of a (url, caption) pair that
    passed them (the uid stands for the pair)."""
    reason, detail = _filter_reasons(config)
    marked = links.withColumn("reason", reason).withColumn("detail", detail)
    order = Window.partitionBy("uid").orderBy("source_file", "record_offset", "link_index")
    passed = marked.filter(F.col("reason").isNull()).withColumn("_rank", F.row_number().over(order))
    repeat = F.col("_rank") > 1
    passed = (passed.withColumn("reason", F.when(repeat, F.lit("duplicate")))
              .withColumn("detail", F.when(repeat, F.lit("same url and caption as an earlier link"))).drop("_rank"))
    return (passed.unionByName(marked.filter(F.col("reason").isNotNull()))
            .withColumn("source_row", F.col("record_offset")).withColumn("preview", F.col("url")))


def _identity(files: list[str]) -> dict:
    """Local files by size and modification time; others by location."""
    local = [file for file in files if is_local(file)]
    return {**file_identity([Path(file) for file in local]),
            **{file: None for file in files if not is_local(file)}}


def _earlier_output(out: Path, rereading: set[str], links_dir: Path, rejects_dir: Path, files_dir: Path) -> None:
    """The earlier output's rows of the files not reread, beside the tasks' parts, as one more part each."""
    keep = ~pc.field("source_file").isin(list(rereading))
    for source, target, schema, extra in ((out / LINKS, links_dir, LINK_SCHEMA, None),
                                          (out / REJECTS, rejects_dir, REJECT_SCHEMA,
                                           ~pc.field("reason").isin(list(POOL_REASONS))),
                                          (out / FILES, files_dir, FILE_SCHEMA, None)):
        table = ds.dataset(source, schema=schema, format="parquet").to_table(
            filter=keep if extra is None else keep & extra)
        pq.write_table(table, target / "part-earlier.parquet")


def run_extract_crawl(spark: SparkSession, files: list[str], out: Path, config: CrawlConfig,
                      retry_failed: bool = False, force: bool = False) -> dict:
    """OUT: the pool (Parquet parts that curate_text reads as they are), `_rejects`, `_links` and `_files`."""
    out = Path(out)
    rereading = files
    if retry_failed:
        earlier = read_manifest(out)
        if earlier is None or not (out / LINKS).is_dir():
            raise UserInputError(f"{out}: no finished extraction to retry (run without --retry-failed first)")
        same_files = set(earlier["inputs"]["files"]) == set(_identity(files))
        if earlier["config"]["extract"] != asdict(config.extract) or not same_files:
            raise UserInputError(f"{out}: the earlier extraction read other files or with other settings; "
                                 f"rerun without --retry-failed")
        rereading = [failed["file"] for failed in earlier["failed_files"]]
        if not rereading:
            return {**earlier, "skipped": True}

    def body(out_dir: Path) -> StageResult:
        scratch = {name: work_dir(out_dir, name) for name in ("links", "rejects", "files")}
        try:
            write_from_tasks(spread(spark, [(file,) for file in rereading], "file string"), _extract(config.extract),
                             {"links": (scratch["links"], LINK_SCHEMA), "rejects": (scratch["rejects"], REJECT_SCHEMA),
                              "files": (scratch["files"], FILE_SCHEMA)})
            if retry_failed:
                _earlier_output(out, set(rereading), scratch["links"], scratch["rejects"], scratch["files"])
            links = spark.read.parquet(str(scratch["links"]))
            rejects = spark.read.parquet(str(scratch["rejects"]))
            kept, rejected = write_split(pool_rows(links, config).unionByName(rejects, allowMissingColumns=True),
                                         out_dir, POOL_COLUMNS)
            for name, folder in (("links", LINKS), ("files", FILES)):
                os.replace(scratch[name], out_dir / folder)
        finally:
            for directory in scratch.values():
                shutil.rmtree(directory, ignore_errors=True)
        reports = file_reports(out_dir / FILES)
        records: Counter = Counter()
        for report in reports:
            records.update(report["records"])
        languages = pc.value_counts(pq.read_table(out_dir, columns=["language"]).column("language")).to_pylist()
        top_languages = sorted(languages, key=lambda entry: -entry["counts"])[:20]
        extra = {"files": dict(Counter(report["outcome"] for report in reports)), "files_read": len(rereading),
                 "failed_files": [{"file": report["source_file"], "error": report["error"]}
                                  for report in reports if report["error"]],
                 "stopped_files": [{"file": report["source_file"], "why": report["stopped"]}
                                   for report in reports if report["stopped"]],
                 "records": dict(sorted(records.items())),
                 "languages": {entry["values"]: entry["counts"] for entry in top_languages}}
        return StageResult(sum(report["links"] for report in reports), kept, rejected, extra)

    return run_stage(out.parent, out.name, asdict(config), {"files": _identity(files)}, body,
                     force=force or retry_failed)
