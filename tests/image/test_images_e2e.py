"""The image side end to end: text curation -> download -> validate -> rebalance -> webdataset shards.

Real images (CIFAR-10 JPEGs and the UKBench set with its corrupt JPEG and RGBA PNG) are served on
127.0.0.1 next to urls that 404, time out, return HTML or use another scheme.
"""

from __future__ import annotations

import json

import polars as pl
import pyarrow.parquet as pq
import pytest
import webdataset

from pipeline.experiments.image_server import ImageServer
from pipeline.image.check import ImageLimits
from pipeline.image.download import STATUS, run_download, selection_from_urls
from pipeline.run.data import Run
from pipeline.run.directory import REJECTS
from pipeline.run.stages import STAGES
from pipeline.spark.curate import TextCurationConfig, curate_text
from pipeline.spark.rebalance import run_rebalance
from pipeline.spark.shards import run_write_shards
from pipeline.spark.validate import run_validate
from pipeline.text.balancing import BalanceConfig
from tests.helpers import LOOPBACK, OPTIONS, SHARED

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture
def served_pool(tmp_path, cifar_images):
    ukbench = SHARED / "dedup" / "ukbench"
    files = dict(cifar_images)
    files.update({path.relative_to(ukbench).as_posix().replace("/", "__"): path
                  for path in sorted(ukbench.rglob("*")) if path.is_file()})
    return files


def _pool_rows(server: ImageServer, files: dict) -> list[dict]:
    rows = []
    for name in files:
        label = next((label for label in CLASSES if f"_{label}_" in name), "dog")
        rows.append({"url": server.url("img", name), "caption": f"a photo of a {label} ({name})"})
    rows += [{"url": server.url("missing", "gone.jpg"), "caption": "a photo of a cat that is gone"},
             {"url": server.url("html", "page.jpg"), "caption": "a photo of a dog page"},
             {"url": server.url("slow", next(iter(files))), "caption": "a photo of a slow horse"},
             {"url": "file:///etc/passwd", "caption": "a photo of a ship file"},
             {"url": "a photo without url", "caption": ""}]
    return rows


def test_every_selected_uid_ends_in_the_shards_or_with_a_reason(spark, tmp_path, served_pool):
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_text("\n".join(CLASSES + ("photo",)) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    with ImageServer(served_pool) as server:
        pool = tmp_path / "pool.jsonl"
        pool.write_text("".join(json.dumps(row) + "\n" for row in _pool_rows(server, served_pool)))
        text = curate_text(spark, TextCurationConfig(pool=str(pool), metadata=str(vocabulary), out=str(run),
                                                     balance=BalanceConfig(t=1000, seed=0)))
        download = run_download(run, OPTIONS)
    validate_manifest = run_validate(spark, run, ImageLimits(min_side=0, max_aspect=3), max_distance=6)
    rebalance = run_rebalance(spark, run, BalanceConfig(t=20, seed=0))
    shards = run_write_shards(spark, run, tmp_path / "shards", samples_per_shard=16)

    selected = {row["uid"]: row for row in pq.read_table(run / "selection").to_pylist()}
    failed = {row["uid"] for row in pq.read_table(run / "download" / STATUS).to_pylist() if row["status"] != "success"}
    scheme = {row["uid"] for row in pq.read_table(run / "download" / REJECTS).to_pylist()}
    invalid = {row["uid"] for row in pq.read_table(run / "validate").to_pylist() if row["status"] == "rejected"}
    balanced_out = {row["uid"] for row in pq.read_table(run / "rebalance" / REJECTS).to_pylist()}
    index = pq.read_table(tmp_path / "shards" / STAGES["shards"].files["index"]).to_pylist()
    in_shards = {row["uid"] for row in index}
    parts = [failed, scheme, invalid, balanced_out, in_shards]
    assert sum(map(len, parts)) == len(set().union(*parts)) == len(selected)  # disjoint, and cover everything
    assert set().union(*parts) == set(selected)
    assert text["selection"]["rows_out"] == download["rows_in"]
    assert download["rows_out"] == validate_manifest["rows_in"]
    assert validate_manifest["rows_out"] == rebalance["rows_in"]
    assert rebalance["rows_out"] == shards["rows_in"] == shards["rows_out"] == len(index)
    assert download["rejected"]["unsupported_scheme"] == 1
    assert rebalance["rejected"]["balanced_out"] > 0  # t=20 caps the frequent "photo" entry

    stats = json.loads((tmp_path / "shards" / STAGES["shards"].files["stats"]).read_text())
    tars = sorted(str(path) for path in (tmp_path / "shards").glob("*.tar"))
    assert stats["samples"] == len(index) and stats["shards"] == len(tars) == -(-len(index) // 16)
    read_back = {}
    for sample in webdataset.WebDataset(tars, shardshuffle=False).decode("pil").to_tuple("__key__", "jpg", "txt",
                                                                                         "json"):
        key, image, caption, meta = sample
        assert image.size[0] > 0 and meta["uid"] == key
        read_back[key] = (caption, meta)
    assert set(read_back) == in_shards
    for uid, (caption, meta) in read_back.items():
        assert caption == selected[uid]["caption"]
        assert meta["url"] == selected[uid]["url"] and meta["entry_ids"] == list(selected[uid]["entry_ids"])
    assert open_clip_loader_count(tars) == len(index)


def open_clip_loader_count(tars: list[str]) -> int:
    """Samples that open_clip's own webdataset loader (open_clip_train.data) yields from the shards."""
    from argparse import Namespace

    from pipeline.clip.torch_compat import prepare_torchvision

    prepare_torchvision()
    import open_clip
    from open_clip_train.data import get_wds_dataset
    from torchvision import transforms

    args = Namespace(train_data=None, val_data="::".join(tars), val_num_samples=None, seed=0, batch_size=8,
                     workers=0, world_size=1, train_data_upsampling_factors=None, train_num_samples=None)
    preprocess = transforms.Compose([transforms.Resize(32), transforms.CenterCrop(32), transforms.ToTensor()])
    loader = get_wds_dataset(args, preprocess, is_train=False, tokenizer=open_clip.get_tokenizer("RN50")).dataloader
    return sum(images.shape[0] for images, texts in loader if texts.shape[1] == 77)


@pytest.mark.slow
def test_image_jobs_run_alone_and_download_retries_failed_under_spark_submit(spark, tmp_path, cifar_images):
    from tests.helpers import REPO, run_job_here, submit

    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_text("photo\nairplane\n", encoding="utf-8")
    run, shards = tmp_path / "run", tmp_path / "shards"
    names = list(cifar_images)[:24]
    with ImageServer(cifar_images) as server:
        pool = tmp_path / "pool.jsonl"
        rows = [{"url": server.url("img", name), "caption": f"a photo of an airplane {name}"} for name in names[:20]]
        rows += [{"url": server.url("flaky", name), "caption": f"a flaky photo {name}"} for name in names[20:]]
        pool.write_text("".join(json.dumps(row) + "\n" for row in rows))
        # the text jobs' own spark-submit runs are tests/cli's; here the download job's
        curate_text(spark, TextCurationConfig(pool=str(pool), metadata=str(vocabulary), out=str(run),
                                              balance=BalanceConfig(t=1000, seed=0)))
        # Flaky urls fail at once (503); the timeout only has to spare real images on a busy machine.
        first = submit(str(REPO / "jobs" / "download.py"), "--run", str(run), "--timeout", "10", *LOOPBACK)
        assert "failed_to_download 4" in first.stdout
        server.heal()
        retried = submit(str(REPO / "jobs" / "download.py"), "--run", str(run), "--retry-failed", *LOOPBACK)
        assert "out        24" in retried.stdout and "rejected: none" in retried.stdout
    assert run_job_here("validate", "--run", str(run), "--min-side", "0")[0] == 0
    assert run_job_here("rebalance", "--run", str(run), "--t", "1000")[0] == 0
    status, written = run_job_here("write_shards", "--run", str(run), "--out", str(shards),
                                   "--samples-per-shard", "10")
    assert status == 0 and "24 samples in 3 shards" in written
    assert json.loads((shards / STAGES["shards"].files["stats"]).read_text())["samples"] == 24
    status, missing = run_job_here("write_shards", "--run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"))
    assert status == 2 and "run download, validate and rebalance first" in missing and "Traceback" not in missing


@pytest.mark.slow
def test_offline_image_demo_job_writes_readable_shards(demo_run):
    out, stdout = demo_run
    assert "rejected: duplicate" in stdout and "unsupported_scheme 1" in stdout
    index = pq.read_table(out / "shards" / STAGES["shards"].files["index"])
    tars = sorted(str(path) for path in (out / "shards").glob("*.tar"))
    samples = list(webdataset.WebDataset(tars, shardshuffle=False).to_tuple("__key__", "txt"))
    assert index.num_rows == len(samples) > 400
    assert sorted(key for key, _ in samples) == sorted(index.column("uid").to_pylist())


@pytest.mark.slow
def test_the_demo_shards_hold_only_what_validation_dedup_and_decontamination_kept(demo_run):
    out, stdout = demo_run
    run = Run(out)
    in_shards = set(pq.read_table(out / "shards" / STAGES["shards"].files["index"]).column("uid").to_pylist())
    validate = run.table("validate", ["uid", "status"])
    dedup_manifest = run.manifests["dedup"]
    assert dedup_manifest["auto"] is not None and dedup_manifest["auto"]["says"] in stdout
    eps = run.manifests["rebalance"]["dedup"]["eps"]
    assert eps == (dedup_manifest["eps"] or [None])[0]
    dedup = run.table("dedup", ["uid", "status", "eps"])
    removed = {
        "validate": set(validate.filter(pl.col("status") != "kept")["uid"]),
        "dedup": set(dedup.filter((pl.col("eps") == eps) & (pl.col("status") == "removed"))["uid"]),
        "decontaminate": set(run.rejects("decontaminate")["uid"]),
    }
    kept = set(validate.filter(pl.col("status") == "kept")["uid"]) - removed["dedup"] - removed["decontaminate"]
    # the demo's evaluation set, one photo of each class, goes wherever validation kept it (under either url)
    evaluation = {path.name for path in (out / "eval_images").iterdir()}
    served = run.captions().with_columns(pl.col("url").str.split("/").list.last().str.strip_prefix("copy-")
                                         .alias("name"))
    planted = set(served.filter(pl.col("name").is_in(evaluation))["uid"]) & set(validate["uid"])
    assert len(evaluation) == 10 and removed["decontaminate"] == planted - removed["validate"]
    assert len(removed["decontaminate"]) >= 5
    assert in_shards <= kept and not in_shards & set().union(*removed.values())
    assert in_shards == set(run.table("rebalance", ["uid"])["uid"])
    for row in run.funnel().iter_rows(named=True):
        assert row["rows_in"] == row["rows_out"] + row["rejected"], row["stage"]
    funnel = {row["stage"]: row for row in run.funnel().iter_rows(named=True)}
    assert funnel["decontaminate"]["reasons"] == [{"reason": "eval_duplicate", "rows": len(removed["decontaminate"])}]
    assert funnel["rebalance"]["rows_in"] == len(kept)


@pytest.mark.slow
def test_download_on_a_standalone_cluster_uses_its_executors(tmp_path, cifar_images, standalone_cluster):
    from tests.helpers import REPO, submit

    master, _ = standalone_cluster
    with ImageServer(cifar_images) as server:
        port = server.base_url.rsplit(":", 1)[1]
        # the last url leads to another loopback address: the guard refuses it on the executor too
        selection_from_urls(tmp_path / "run", [server.url("img", name) for name in list(cifar_images)[:20]]
                            + [server.url("missing", "gone.jpg"), f"http://127.0.0.2:{port}/img/gone.jpg"])
        result = submit("--master", master, "--executor-memory", "1g", str(REPO / "jobs" / "download.py"),
                        "--run", str(tmp_path / "run"), "--samples-per-shard", "8", *LOOPBACK)
    manifest = json.loads((tmp_path / "run" / "download" / "_manifest.json").read_text())
    assert (manifest["rows_out"], manifest["rejected"]) == (20, {"failed_to_download": 1, "non_public_address": 1})
    assert manifest["shards"] == 3
    # img2dataset's Spark distributor ran one task per shard on this application's executor (the job
    # itself reads and writes with pyarrow, so these are the only tasks)
    executor_log = "".join(path.read_text() for path in (tmp_path / "work").rglob("stderr"))
    assert executor_log.count("Finished task") == manifest["shards"]
    assert "download" in result.stdout


@pytest.mark.slow
def test_a_killed_download_job_resumes_without_refetching_finished_shards(tmp_path, cifar_images, spark):
    import os
    import signal
    import subprocess

    from tests.helpers import ENV, REPO, SUBMIT, run_job_here

    names = list(cifar_images)[:40]
    run = tmp_path / "run"
    # One process takes the 5 shards of 8 in order; the third shard's urls are held by the server, so when
    # its first request arrives the first two shards are finished and the rest are not.
    args = SUBMIT + [str(REPO / "jobs" / "download.py"), "--run", str(run), "--processes", "1", "--threads", "2",
                     "--samples-per-shard", "8", "--timeout", "600", *LOOPBACK]
    with ImageServer(cifar_images) as server:
        selection_from_urls(run, [server.url("img" if index < 16 else "slow", name)
                                  for index, name in enumerate(names)])
        job = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        while not server.slow_reached.wait(0.1):
            assert job.poll() is None, "the download job ended before it reached the third shard"
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
        server.release()
        finished = sorted((run / "download").glob("*_stats.json"))
        assert len(finished) == 2 and not (run / "download" / "_manifest.json").exists()
        done_urls = {url for stats in finished for url in
                     pq.read_table(str(stats).replace("_stats.json", ".parquet")).column("url").to_pylist()}
        before = len(server.requests)
        status, rerun = run_job_here("download", *args[len(SUBMIT) + 1:])  # the rerun needs no new JVM
        refetched = {server.base_url + path for path in server.requests[before:]}
    assert status == 0, rerun[-2000:]
    assert refetched and not refetched & done_urls
    manifest = json.loads((run / "download" / "_manifest.json").read_text())
    assert manifest["rows_out"] == len(names) and manifest["shards"] == 5
