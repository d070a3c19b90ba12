"""Downloads with img2dataset against a real HTTP server on 127.0.0.1 serving real images."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.experiments.image_server import ImageServer
from pipeline.image.download import (
    STATUS,
    final_status,
    run_download,
    selection_from_urls,
    split_by_scheme,
)
from pipeline.run.directory import MANIFEST, REJECTS, read_manifest
from tests.helpers import OPTIONS


def status_by_uid(run_dir: Path) -> dict[str, dict]:
    return {row["uid"]: row for row in pq.read_table(run_dir / "download" / STATUS).to_pylist()}


def test_only_http_and_https_urls_with_a_host_are_downloadable():
    urls = ["http://example.com/a.jpg", "HTTPS://Example.com/b.png", "file:///etc/passwd", "ftp://host/c.jpg",
            "javascript:alert(1)", "http:///no-host.jpg", "//example.com/d.jpg", "", None]
    table = pa.table({"uid": [str(index) for index in range(len(urls))], "url": pa.array(urls, pa.string())})
    good, rejects = split_by_scheme(table)
    assert good.column("uid").to_pylist() == ["0", "1"]
    assert rejects.column("uid").to_pylist() == [str(index) for index in range(2, len(urls))]
    assert set(rejects.column("reason").to_pylist()) == {"unsupported_scheme"}


def test_a_success_from_any_pass_wins_else_the_latest_attempt():
    attempts = pa.table({
        "uid": ["a", "a", "b", "b", "c"], "shard": pa.array([0, 3, 0, 3, 1], pa.int32()),
        "status": ["success", "failed_to_download", "failed_to_download", "failed_to_resize", "success"],
        "error_message": [None, "timed out", "timed out", "Image decoding error", None]})
    final = {row["uid"]: (row["status"], row["shard"]) for row in final_status(attempts).to_pylist()}
    assert final == {"a": ("success", 0), "b": ("failed_to_resize", 3), "c": ("success", 1)}


@pytest.mark.slow  # three img2dataset runs (a process pool each) and a 5 s timeout waited out: 12-28 s
def test_download_accounts_for_every_url_and_retry_recovers_failures(tmp_path, cifar_images):
    with ImageServer(cifar_images) as server:
        served = [server.url("img", name) for name in cifar_images]
        awkward = [server.url("missing", "gone.jpg"), server.url("html", "page.jpg"),
                   server.url("slow", next(iter(cifar_images))), server.url("flaky", "train_cat_0000.jpg"),
                   "file:///etc/passwd", "ftp://127.0.0.1/x.jpg"]
        server.files["train_cat_0000.jpg"] = next(iter(cifar_images.values()))
        uids = selection_from_urls(tmp_path, served + awkward)
        first = run_download(tmp_path, OPTIONS)
        assert first["rows_in"] == len(uids) == first["rows_out"] + sum(first["rejected"].values())
        assert first["rows_out"] == len(served)
        assert first["rejected"] == {"failed_to_download": 3, "failed_to_resize": 1, "unsupported_scheme": 2}
        status = status_by_uid(tmp_path)
        by_url = {row["url"]: row for row in status.values()}
        assert by_url[awkward[0]]["error_message"] == "HTTP Error 404: Not Found"
        assert by_url[awkward[1]]["status"] == "failed_to_resize"  # an HTML page is no image
        assert "timed out" in by_url[awkward[2]]["error_message"]
        assert by_url[awkward[3]]["error_message"] == "HTTP Error 503: Service Unavailable"
        rejects = pq.read_table(tmp_path / "download" / REJECTS).to_pylist()
        assert [row["preview"] for row in rejects] == awkward[4:]
        # nothing but the listed http urls was ever requested
        listed_paths = {url.removeprefix(server.base_url) for url in served + awkward[:4]}
        assert set(server.requests) <= listed_paths

        server.heal()
        requests_before = len(server.requests)
        retried = run_download(tmp_path, OPTIONS, retry_failed=True)
        retried_paths = server.requests[requests_before:]
    assert sorted(retried_paths) == sorted(url.removeprefix(server.base_url) for url in awkward[:4])
    assert retried["rows_out"] == len(served) + 1  # the flaky url, served on the second pass
    assert retried["rejected"] == {"failed_to_download": 2, "failed_to_resize": 1, "unsupported_scheme": 2}
    assert retried["passes"] == 2
    status = status_by_uid(tmp_path)
    assert len(status) == len(served) + 4 and status[uids[len(served) + 3]]["status"] == "success"
    keys = [member.name.split(".")[0] for path in sorted((tmp_path / "download").glob("*.tar"))
            for member in tarfile.open(path) if member.name.endswith(".jpg")]
    assert len(keys) == len(set(keys)) == retried["rows_out"]  # every image once
    again = run_download(tmp_path, OPTIONS)
    assert again["skipped"] and again["fingerprint"] == retried["fingerprint"]


@pytest.mark.slow  # two img2dataset runs, one of them killed: 12 s
def test_a_rerun_after_a_crash_resumes_without_refetching_finished_shards(tmp_path, cifar_images):
    with ImageServer(cifar_images) as server:
        selection_from_urls(tmp_path, [server.url("img", name) for name in cifar_images])
        complete = run_download(tmp_path, OPTIONS)
        download = tmp_path / "download"
        # a crash while writing the last shard: its stats file (written last by img2dataset) and the
        # stage manifest are missing
        last = max(download.glob("*_stats.json"))
        last.unlink()
        (download / MANIFEST).unlink()
        assert read_manifest(download) is None
        lost = pq.read_table(download / last.name.replace("_stats.json", ".parquet")).column("url").to_pylist()
        requests_before = len(server.requests)
        resumed = run_download(tmp_path, OPTIONS)
        refetched = server.requests[requests_before:]
    assert sorted(refetched) == sorted(url.removeprefix(server.base_url) for url in lost)
    assert 0 < len(lost) < len(cifar_images)
    assert (resumed["rows_out"], resumed["rejected"]) == (complete["rows_out"], complete["rejected"])
    assert resumed["rows_out"] == len(cifar_images)
