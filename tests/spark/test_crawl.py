"""The crawl extraction job: crawl files to a pool that curate_text reads as it is; bad files named, retried."""

import os
import shutil
import signal
import subprocess
from collections import Counter

import pyarrow.parquet as pq
import pytest

from pipeline.crawl.extract import ExtractConfig
from pipeline.crawl.files import crawl_files
from pipeline.crawl.output import FILES, LINKS, file_reports
from pipeline.crawl.synthetic import pages_from_captions, write_crawl
from pipeline.errors import UserInputError
from pipeline.run.directory import HOLD_PIPE, HOLD_STAGE, MANIFEST, REJECTS
from pipeline.spark.crawl import CrawlConfig, run_extract_crawl
from pipeline.spark.curate import TextCurationConfig, curate_text
from pipeline.text.balancing import BalanceConfig
from tests.helpers import ENV, REPO, SHARED, SUBMIT, VOCAB, open_when_peer_opens, run_job_here

pytestmark = [pytest.mark.slow, pytest.mark.real_data]
EXTRACT = str(REPO / "jobs" / "extract_crawl.py")


@pytest.fixture(scope="module")
def crawl(tmp_path_factory, captions):
    """Two generated WARC/WAT pairs from real captions, the real Common Crawl page, and a file that is no WARC."""
    folder = tmp_path_factory.mktemp("crawl")
    write_crawl(pages_from_captions(captions[:600], seed=1), folder / "a.warc.gz", folder / "a.warc.wat.gz")
    write_crawl(pages_from_captions(captions[600:900], seed=2), folder / "b.warc.gz", folder / "b.warc.wat.gz")
    shutil.copy(SHARED / "crawl" / "whirlwind.warc.gz", folder / "whirlwind.warc.gz")
    (folder / "junk.warc.gz").write_bytes(b"this is not a WARC file\n" * 20)
    return folder


def pool(out):
    return pq.read_table(out).sort_by("uid")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, spark, crawl):
    """The whole crawl folder, extracted in one clean run: (pool folder, manifest)."""
    out = tmp_path_factory.mktemp("extracted") / "pool"
    return out, run_extract_crawl(spark, crawl_files([str(crawl)]), out, CrawlConfig())


def test_a_crawl_becomes_a_pool_with_every_link_accounted_for(extracted, crawl):
    out, manifest = extracted
    rows, rejects = pool(out), pq.read_table(out / REJECTS)
    reports = file_reports(out / FILES)
    assert manifest["rows_in"] == sum(report["links"] for report in reports) == rows.num_rows + rejects.num_rows
    assert manifest["rejected"] == dict(Counter(rejects.column("reason").to_pylist()))
    assert manifest["files"] == {"read": 5, "failed": 1}
    assert [failed["file"] for failed in manifest["failed_files"]] == [str(crawl / "junk.warc.gz")]
    # each WARC page's pairs come again from its WAT record: one of each pair is a duplicate
    assert len(set(rows.column("uid").to_pylist())) == rows.num_rows
    links = pq.read_table(out / LINKS)
    assert manifest["rejected"]["duplicate"] == links.num_rows - rows.num_rows
    kept = set(zip(rows.column("url").to_pylist(), rows.column("caption").to_pylist()))
    assert ("https://upload.wikimedia.org/wikipedia/commons/thumb/d/d2/Map_pointer.svg/12px-Map_pointer.svg.png",
            "Escopete") in kept
    # among duplicates the first by file name is kept: x.warc.gz sorts before x.warc.wat.gz
    assert {source.rsplit("/", 1)[1] for source in rows.column("source_file").to_pylist()} == {
        "a.warc.gz", "b.warc.gz", "whirlwind.warc.gz"}
    assert set(rows.column("language").to_pylist()) >= {"en"}
    assert manifest["records"]["page"] == 2 * (75 + 38) + 1


def test_filters_reject_with_reasons(tmp_path, spark, crawl):
    out = tmp_path / "pool"
    files = [str(crawl / "a.warc.gz")]
    manifest = run_extract_crawl(spark, files, out, CrawlConfig(languages=("de",), min_words=3))
    everything = run_extract_crawl(spark, files, tmp_path / "all", CrawlConfig())
    assert manifest["rows_out"] < everything["rows_out"]
    assert set(pool(out).column("language").to_pylist()) <= {"de"}
    assert manifest["rejected"]["language_filtered"] > 0
    rejects = pq.read_table(out / REJECTS)
    assert all(detail.startswith("language ") for detail, reason in
               zip(rejects.column("detail").to_pylist(), rejects.column("reason").to_pylist())
               if reason == "language_filtered")
    worded = run_extract_crawl(spark, files, tmp_path / "worded", CrawlConfig(min_words=4, min_chars=20))
    captions = pool(tmp_path / "worded").column("caption").to_pylist()
    assert captions and all(len(caption.split()) >= 4 and len(caption) >= 20 for caption in captions)
    assert worded["rejected"]["too_few_words"] + worded["rejected"].get("too_short", 0) == (
        everything["rows_out"] - worded["rows_out"])


def test_retry_failed_reads_only_the_failed_files_and_gives_the_clean_pool(tmp_path, spark, crawl, captions):
    folder = tmp_path / "crawl"
    shutil.copytree(crawl, folder)
    out = tmp_path / "pool"
    first = run_extract_crawl(spark, crawl_files([str(folder)]), out, CrawlConfig())
    assert first["files"]["failed"] == 1
    # the file is fixed (fetched again, say): a real WARC now
    write_crawl(pages_from_captions(captions[900:1000], seed=4), folder / "junk.warc.gz", tmp_path / "x.wat.gz")
    retried = run_extract_crawl(spark, crawl_files([str(folder)]), out, CrawlConfig(), retry_failed=True)
    assert retried["files_read"] == 1 and retried["failed_files"] == []
    clean = run_extract_crawl(spark, crawl_files([str(folder)]), tmp_path / "clean", CrawlConfig())
    assert pool(out).equals(pool(tmp_path / "clean"))
    assert retried["rejected"] == clean["rejected"] and retried["rows_in"] == clean["rows_in"]
    assert run_extract_crawl(spark, crawl_files([str(folder)]), out, CrawlConfig())["skipped"]
    with pytest.raises(UserInputError, match="other settings"):  # links read otherwise cannot be mixed in
        run_extract_crawl(spark, crawl_files([str(folder)]), out, CrawlConfig(ExtractConfig(titles=True)),
                          retry_failed=True)


def test_curate_text_reads_the_pool_as_it_is(tmp_path, spark, extracted):
    out, manifest = extracted
    config = TextCurationConfig(pool=str(out), metadata=str(VOCAB), out=str(tmp_path / "run"),
                                balance=BalanceConfig(t=5))
    ingest = curate_text(spark, config)["ingest"]
    assert ingest["rows_in"] == ingest["rows_out"] == manifest["rows_out"]  # _links and _rejects are not read
    languages = dict(zip(pool(out).column("uid").to_pylist(), pool(out).column("language").to_pylist()))
    for stage in ("matches", "selection"):  # the pool's language rides along
        rows = pq.read_table(tmp_path / "run" / stage, columns=["uid", "language"])
        assert rows.num_rows > 0
        assert rows.column("language").to_pylist() == [languages[uid] for uid in rows.column("uid").to_pylist()]


def test_the_job_names_bad_files_and_a_killed_run_leaves_nothing_complete(tmp_path, spark, crawl, extracted):
    out, hold = tmp_path / "pool", tmp_path / "hold"
    os.mkfifo(hold)
    job = subprocess.Popen(SUBMIT + [EXTRACT, "--input", str(crawl), "--out", str(out)],
                           env={**ENV, HOLD_STAGE: "pool", HOLD_PIPE: str(hold)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    with open_when_peer_opens(hold, "wb", job):
        assert list(tmp_path.glob(".pool.tmp-*")), "the extraction has not started"
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert not (out / MANIFEST).exists()
    status, output = run_job_here("extract_crawl", "--input", str(crawl), "--out", str(out))
    assert status == 1, output  # one file could not be read: named, and the status says so
    assert f"error: {crawl / 'junk.warc.gz'}: " in output and "--retry-failed" in output
    assert "Traceback" not in output and f"pool: {out}" in output
    assert pool(out).equals(pool(extracted[0]))
    assert not list(tmp_path.glob(".pool.*"))


def test_extract_config_travels_into_the_fingerprint(tmp_path, spark, crawl):
    files = [str(crawl / "whirlwind.warc.gz")]
    run_extract_crawl(spark, files, tmp_path / "pool", CrawlConfig())
    titled = run_extract_crawl(spark, files, tmp_path / "pool", CrawlConfig(ExtractConfig(titles=True)))
    assert not titled["skipped"]
