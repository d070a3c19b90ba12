"""Download the selected urls with img2dataset into DIR/download, resumably, with every url accounted for.

img2dataset owns DIR/download: its shards (`NNNNN.tar`, `NNNNN.parquet`, `NNNNN_stats.json`). Around it:
- urls that are not http(s) are rejected before any request (`DIR/download/_rejects`);
- the url list of each pass is written once to `_input/pass-N.parquet`, so a killed pass resumes with the
  same shard numbering and img2dataset skips the shards it finished (those with a stats file);
- `--retry-failed` downloads only the uids whose last attempt failed, as new shards (img2dataset's extend mode);
- every request goes to a public address, or to a range `allow_network` opens (pipeline.image.network): a
  refused url ends with reason `non_public_address`;
- `_status/` holds one row per uid: its final status (a success from any pass wins), reason, error and shard;
- `_manifest.json` is written last: without it the stage is not complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.image.domains import EXCLUDED_DOMAIN, DomainRules
from pipeline.image.network import REFUSED, NetworkPolicy
from pipeline.run.directory import (
    MANIFEST,
    REJECT_SCHEMA,
    REJECTS,
    StageResult,
    fingerprint,
    read_manifest,
    run_stage,
    write_json_atomic,
)
from pipeline.run.stages import STAGES, fingerprints, require_upstream

DOWNLOAD, BALANCE = STAGES["download"], STAGES["balance"]
INPUT, STATUS = DOWNLOAD.files["input"], DOWNLOAD.files["status"]
SELECTION_COLUMNS = ["uid", "url", "caption"]
STATUS_COLUMNS = ["uid", "url", "key", "shard", "status", "error_message", "width", "height", "original_width",
                  "original_height", "sha256"]
_HTTP_URL = r"(?i)^https?://[^/?#\s]+"
OPTED_OUT = "opted_out"  # the site's X-Robots-Tag said noai, noimageai, noindex or noimageindex
ROBOTS_REFUSAL = "disallowed by X-Robots-Tag"  # img2dataset's error message for it


@dataclass(frozen=True)
class DownloadOptions:
    """What img2dataset is asked to do; the names follow img2dataset's own options."""

    image_size: int = 256
    resize_mode: str = "keep_ratio"  # not border: letterbox padding would change the perceptual hash
    resize_only_if_bigger: bool = False
    encode_format: str = "jpg"
    encode_quality: int = 95
    skip_reencode: bool = False
    processes_count: int = max(1, os.cpu_count() or 1)
    thread_count: int = 64
    timeout: int = 10
    retries: int = 0
    number_sample_per_shard: int = 10_000
    distributor: str = "multiprocessing"  # multiprocessing | pyspark (uses the active SparkSession)
    allow_network: tuple[str, ...] = ()  # CIDR ranges reachable besides public addresses (pipeline.image.network)
    user_agent_token: str | None = None  # names the crawler in the User-Agent, as X-Robots-Tag rules address it
    exclude_domains: str | None = None  # a file of domains whose urls (subdomains included) are never requested
    include_domains: str | None = None  # a file of the only domains whose urls are requested


def selection_from_urls(run_dir: Path, urls: list[str | None], captions: list[str] | None = None) -> list[str]:
    """Start a run directory from a plain url list, as if text curation had selected every url.

    For benchmarks and tests, and for downloading a list that needs no curation. Returns the uids.
    """
    uids = [f"{index:032x}" for index in range(len(urls))]
    table = pa.table({"uid": uids, "url": pa.array(urls, pa.string()),
                      "caption": captions or [f"caption {index}" for index in range(len(urls))],
                      "entry_ids": pa.array([[]] * len(urls), pa.list_(pa.int32())),
                      "keep_prob": [1.0] * len(urls)})

    def body(out_dir: Path) -> StageResult:
        pq.write_table(table, out_dir / "part-0.parquet")
        return StageResult(len(urls), len(urls))

    content = hashlib.sha256(json.dumps([table.column("url").to_pylist(), table.column("caption").to_pylist()])
                             .encode("utf-8")).hexdigest()
    run_stage(Path(run_dir), BALANCE.folder, {"urls": len(urls), "content": content}, {}, body)
    return uids


def _rejects(rows: pa.Table, reason: str, details: list[str]) -> pa.Table:
    """Selection rows as rejects in the common schema (the url as the preview)."""
    return pa.table({
        "uid": rows.column("uid"),
        "reason": pa.array([reason] * rows.num_rows, pa.string()),
        "detail": pa.array(details, pa.string()),
        "source_file": pa.nulls(rows.num_rows, pa.string()),
        "source_row": pa.nulls(rows.num_rows, pa.int64()),
        "preview": pc.utf8_slice_codeunits(rows.column("url"), 0, 200),
    }, schema=REJECT_SCHEMA)


def split_by_scheme(selection: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Rows whose url is http(s) with a host, and the rest as rejects in the common schema."""
    good = pc.fill_null(pc.match_substring_regex(selection.column("url"), _HTTP_URL), False)
    bad = selection.filter(pc.invert(good))
    return selection.filter(good), _rejects(bad, "unsupported_scheme",
                                            ["only http and https urls are downloaded"] * bad.num_rows)


def split_by_domain(selection: pa.Table, rules: DomainRules) -> tuple[pa.Table, pa.Table]:
    """Rows whose host the domain rules let through, and the rest as `excluded_domain` rejects."""
    verdicts = [rules.refusal(url) for url in selection.column("url").to_pylist()]
    refused = pa.array([verdict is not None for verdict in verdicts])
    return (selection.filter(pc.invert(refused)),
            _rejects(selection.filter(refused), EXCLUDED_DOMAIN, [verdict for verdict in verdicts if verdict]))


def finished_shards(download_dir: Path) -> list[int]:
    """Shards img2dataset completed: it writes a shard's stats file after its tar and parquet."""
    return sorted(int(path.name.split("_")[0]) for path in download_dir.glob("*_stats.json"))


def shard_rows(download_dir: Path) -> pa.Table:
    """img2dataset's per-shard parquet of every finished shard, one row per attempted url."""
    tables = []
    for shard in finished_shards(download_dir):
        table = pq.read_table(download_dir / f"{shard:05d}.parquet")
        table = table.append_column("shard", pa.array([shard] * table.num_rows, pa.int32()))
        tables.append(table.select(STATUS_COLUMNS))
    if not tables:
        return pa.table({name: [] for name in STATUS_COLUMNS})
    return pa.concat_tables(tables, promote_options="permissive")


def final_status(attempts: pa.Table) -> pa.Table:
    """One row per uid: a success if any attempt succeeded, else its latest attempt (highest shard)."""
    success = pc.equal(attempts.column("status"), "success")
    ranked = attempts.append_column("_rank", pc.add(pc.multiply(pc.cast(success, pa.int64()), 1 << 32),
                                                    pc.cast(attempts.column("shard"), pa.int64())))
    ranked = ranked.sort_by([("uid", "ascending"), ("_rank", "descending")])
    uids = ranked.column("uid")
    first = pc.not_equal(uids, pa.concat_arrays([pa.array([None], uids.type), uids.combine_chunks()[:-1]]))
    return ranked.filter(pc.fill_null(first, True)).drop_columns(["_rank"])


def img2dataset_arguments(options: DownloadOptions) -> tuple[dict, NetworkPolicy]:
    """img2dataset's own options, and the network policy its downloads go through (the domain lists apply
    before img2dataset sees the urls)."""
    arguments = asdict(options)
    policy = NetworkPolicy(tuple(arguments.pop("allow_network")))
    for ours in ("exclude_domains", "include_domains"):
        arguments.pop(ours)
    return arguments, policy


def _run_img2dataset(input_path: Path, download_dir: Path, options: DownloadOptions, mode: str) -> None:
    from img2dataset import download

    from pipeline.image.guarded_downloader import guarded_img2dataset

    arguments, policy = img2dataset_arguments(options)
    with guarded_img2dataset(policy):
        download(url_list=str(input_path), output_folder=str(download_dir), input_format="parquet",
                 output_format="webdataset", url_col="url", caption_col="caption", save_additional_columns=["uid"],
                 incremental_mode=mode, compute_hash="sha256", **arguments)


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temporary)
    temporary.replace(path)


def _first_pass(selection_dir: Path, out: Path, rules: DomainRules) -> tuple[int, pa.Table]:
    """Write the url list of the first pass and the scheme and domain rejects, once; return rows in and
    rejects. Nothing is requested for a rejected url."""
    selection = ds.dataset(selection_dir, format="parquet").to_table(columns=SELECTION_COLUMNS)
    good, bad_scheme = split_by_scheme(selection.sort_by("uid"))
    good, bad_domain = split_by_domain(good, rules)
    rejects = pa.concat_tables([bad_scheme, bad_domain])
    _write_atomic(rejects, out / REJECTS / "rejects.parquet")
    _write_atomic(good, out / INPUT / "pass-0.parquet")
    return selection.num_rows, rejects


def _retry_pass(out: Path) -> Path | None:
    """The url list of a new pass: the uids whose latest attempt failed (None if none did)."""
    status = final_status(shard_rows(out))
    failed = status.filter(pc.not_equal(status.column("status"), "success")).column("uid")
    if not len(failed):
        return None
    listed = pq.read_table(out / INPUT / "pass-0.parquet")
    number = len(list((out / INPUT).glob("pass-*.parquet")))
    path = out / INPUT / f"pass-{number}.parquet"
    _write_atomic(listed.filter(pc.is_in(listed.column("uid"), failed)), path)
    return path


def with_reasons(status: pa.Table) -> pa.Table:
    """The status rows with a `reason`: img2dataset's status, except a url the network guard refused."""
    def says(text: str):
        return pc.fill_null(pc.match_substring(status.column("error_message"), text), False)

    reason = pc.if_else(says(f"{REFUSED}:"), REFUSED,
                        pc.if_else(says(ROBOTS_REFUSAL), OPTED_OUT, status.column("status")))
    return status.append_column("reason", reason)


def _outcome_counts(status: pa.Table) -> dict[str, int]:
    counts = pc.value_counts(status.column("reason")).to_pylist()
    return {item["values"]: item["counts"] for item in counts}


def _top_errors(status: pa.Table, limit: int = 10) -> dict[str, int]:
    errors = status.filter(pc.is_valid(status.column("error_message"))).column("error_message")
    counts = sorted(((item["counts"], item["values"]) for item in pc.value_counts(errors).to_pylist()),
                    key=lambda pair: (-pair[0], pair[1]))
    return {error: count for count, error in counts[:limit]}


def run_download(run_dir: Path, options: DownloadOptions, retry_failed: bool = False, force: bool = False) -> dict:
    """Download DIR/selection into DIR/download (resuming a killed run); with retry_failed, the failures again."""
    run_dir = Path(run_dir)
    manifests = require_upstream(run_dir, DOWNLOAD.name)
    upstream = manifests[BALANCE.folder]
    out = DOWNLOAD.path(run_dir)
    # How many processes and threads do the work does not change the result.
    rules = DomainRules.from_files(options.exclude_domains, options.include_domains)
    config = {key: value for key, value in asdict(options).items()
              if key not in ("processes_count", "thread_count", "distributor")}
    if rules.fingerprint:  # the lists' contents, not just their paths
        config["domains"] = rules.fingerprint
    stage_fingerprint = fingerprint(DOWNLOAD.folder, config, fingerprints(manifests))
    current = read_manifest(out)
    if current and current["fingerprint"] == stage_fingerprint and not (retry_failed or force):
        return {**current, "skipped": True}
    marker = out / INPUT / "_fingerprint"
    if force or (out.exists() and (not marker.exists() or marker.read_text() != stage_fingerprint)):
        shutil.rmtree(out, ignore_errors=True)  # another selection or other options: start over
    (out / MANIFEST).unlink(missing_ok=True)  # from here until the new manifest, the stage is incomplete
    started = time.time()
    if not (out / INPUT / "pass-0.parquet").exists():
        _first_pass(BALANCE.path(run_dir), out, rules)
        marker.write_text(stage_fingerprint)
    _run_img2dataset(out / INPUT / "pass-0.parquet", out, options, "incremental")  # resumes a killed pass
    if retry_failed and (retry := _retry_pass(out)) is not None:
        _run_img2dataset(retry, out, options, "extend")
    return _finish(out, options, stage_fingerprint, config, upstream, started)


def _finish(out: Path, options: DownloadOptions, stage_fingerprint: str, config: dict, upstream: dict,
            started: float) -> dict:
    listed = pq.read_table(out / INPUT / "pass-0.parquet", columns=["uid"])
    status = with_reasons(final_status(shard_rows(out)))
    missing = pc.sum(pc.invert(pc.is_in(listed.column("uid"), status.column("uid")))).as_py() or 0
    if missing:
        raise RuntimeError(f"{out}: img2dataset left {missing} urls in unfinished shards; rerun to resume")
    _write_atomic(status, out / STATUS / "status.parquet")
    rejects = pq.read_table(out / REJECTS / "rejects.parquet", columns=["reason"])
    outcomes = _outcome_counts(status)
    rejected = {reason: count for reason, count in outcomes.items() if reason != "success"}
    for item in pc.value_counts(rejects.column("reason")).to_pylist():
        rejected[item["values"]] = item["counts"]
    manifest = {
        "stage": DOWNLOAD.folder, "fingerprint": stage_fingerprint, "config": config,
        "inputs": {BALANCE.folder: upstream["fingerprint"]},
        "rows_in": upstream["rows_out"], "rows_out": outcomes.get("success", 0),
        "rejected": dict(sorted(rejected.items())),
        "passes": len(list((out / INPUT).glob("pass-*.parquet"))), "shards": len(finished_shards(out)),
        "errors": _top_errors(status),
        "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(),
        "wall_seconds": round(time.time() - started, 3),
    }
    if status.num_rows and rejected.get(REFUSED) == status.num_rows:
        manifest["note"] = (f"all {status.num_rows:,} urls lead to non-public addresses (loopback, private, "
                            f"link-local, ...): nothing was downloaded; --allow-network CIDR opens a range you trust")
    if manifest["rows_in"] != manifest["rows_out"] + sum(rejected.values()):
        raise RuntimeError(f"{out}: {manifest['rows_in']} selected but {manifest['rows_out']} downloaded "
                           f"+ {sum(rejected.values())} failed or rejected")
    write_json_atomic(out / MANIFEST, manifest)
    return {**manifest, "skipped": False}
