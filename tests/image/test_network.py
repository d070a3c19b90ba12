"""Downloads reach public addresses only: the guard refuses internal addresses by the address connected to,
redirects and hostnames included, and opens exactly the ranges allowed. Against a real server on 127.0.0.1."""

from __future__ import annotations

import urllib.error

import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserInputError
from pipeline.experiments.image_server import SERVED_FROM, ImageServer
from pipeline.image.domains import EXCLUDED_DOMAIN, DomainRules
from pipeline.image.download import DownloadOptions, run_download, selection_from_urls
from pipeline.image.network import REFUSED, NetworkPolicy, guarded_opener, networks
from pipeline.run.stages import STAGES
from tests.helpers import OPTIONS

REFUSED_ADDRESSES = ["127.0.0.1", "127.0.0.2", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1",
                     "169.254.169.254", "224.0.0.1", "240.0.0.1", "0.0.0.0", "255.255.255.255", "::1", "::",
                     "fe80::1", "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254"]
PUBLIC_ADDRESSES = ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_internal_addresses_are_refused_by_default(address):
    assert not NetworkPolicy().permits(address)


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_addresses_are_permitted(address):
    assert NetworkPolicy().permits(address)


def test_an_allowed_range_opens_exactly_that_range():
    policy = NetworkPolicy(SERVED_FROM)
    assert policy.permits("127.0.0.1") and policy.permits("::ffff:127.0.0.1")
    assert not policy.permits("127.0.0.2") and not policy.permits("::1") and not policy.permits("10.0.0.1")
    with pytest.raises(UserInputError, match="--allow-network 10.0.0.0/33: not an address range"):
        networks(("10.0.0.0/33",))


@pytest.fixture
def server(cifar_images):
    with ImageServer(cifar_images) as served:
        yield served


def fetch(url: str, policy: NetworkPolicy) -> bytes:
    with guarded_opener(policy).open(url, timeout=5) as response:
        return response.read()


def test_the_guard_refuses_other_loopback_addresses_redirects_to_them_and_ipv6(server):
    name = next(iter(server.files))
    port = server.base_url.rsplit(":", 1)[1]
    allowed = NetworkPolicy(SERVED_FROM)
    assert fetch(server.url("img", name), allowed) == server.files[name].read_bytes()
    server.redirects["away.jpg"] = f"http://127.0.0.2:{port}/img/{name}"
    server.redirects["home.jpg"] = server.url("img", name)
    assert fetch(server.url("redirect", "home.jpg"), allowed) == server.files[name].read_bytes()
    for url in (f"http://127.0.0.2:{port}/img/{name}", server.url("redirect", "away.jpg"),
                f"http://[::1]:{port}/img/{name}"):
        with pytest.raises(urllib.error.URLError, match=f"{REFUSED}: "):
            fetch(url, allowed)
    with pytest.raises(urllib.error.URLError, match=f"{REFUSED}: localhost is "):  # a hostname, not an address
        fetch(f"http://localhost:{port}/img/{name}", NetworkPolicy())
    assert sum(path.startswith("/redirect/") for path in server.requests) == 2  # the refused hop never left


def test_the_download_stage_refuses_in_img2dataset_workers_and_counts_why(server, tmp_path):
    name = next(iter(server.files))
    port = server.base_url.rsplit(":", 1)[1]
    server.redirects["away.jpg"] = f"http://127.0.0.2:{port}/img/{name}"
    urls = [server.url("img", name), f"http://127.0.0.2:{port}/img/{name}", server.url("redirect", "away.jpg"),
            f"http://[::1]:{port}/img/{name}"]
    uids = selection_from_urls(tmp_path / "run", urls)
    manifest = run_download(tmp_path / "run", OPTIONS)
    assert manifest["rows_out"] == 1 and manifest["rejected"] == {REFUSED: 3} and "note" not in manifest
    status = {row["uid"]: row for row in
              pq.read_table(STAGES["download"].path(tmp_path / "run") / "_status").to_pylist()}
    assert status[uids[0]]["reason"] == "success"
    assert all(status[uid]["reason"] == REFUSED and REFUSED in status[uid]["error_message"] for uid in uids[1:])


def test_without_allowed_ranges_a_loopback_pool_downloads_nothing_and_says_why(server, tmp_path):
    selection_from_urls(tmp_path / "run", [server.url("img", name) for name in list(server.files)[:5]])
    manifest = run_download(tmp_path / "run", DownloadOptions(processes_count=1, thread_count=4, timeout=5))
    assert manifest["rows_out"] == 0 and manifest["rejected"] == {REFUSED: 5}
    assert manifest["note"].startswith("all 5 urls lead to non-public addresses") and "\n" not in manifest["note"]
    assert server.requests == []  # refused before any connection was made


def test_opt_outs_are_honoured_and_excluded_domains_get_no_request(server, tmp_path):
    names = sorted(server.files)[:3]
    port = server.base_url.rsplit(":", 1)[1]
    excluded = tmp_path / "exclude.txt"
    excluded.write_text("# sites that opted out\nlocalhost\n")
    urls = [server.url("img", names[0]), server.url("noai", names[1]), f"http://localhost:{port}/img/{names[2]}"]
    uids = selection_from_urls(tmp_path / "run", urls)
    options = DownloadOptions(processes_count=1, thread_count=4, timeout=5, allow_network=SERVED_FROM,
                              user_agent_token="metacurate", exclude_domains=str(excluded))
    manifest = run_download(tmp_path / "run", options)
    assert manifest["rows_out"] == 1 and manifest["rejected"] == {"opted_out": 1, EXCLUDED_DOMAIN: 1}
    status = {row["uid"]: row for row in
              pq.read_table(STAGES["download"].path(tmp_path / "run") / "_status").to_pylist()}
    assert status[uids[1]]["reason"] == "opted_out" and status[uids[1]]["status"] != "success"
    rejects = pq.read_table(STAGES["download"].path(tmp_path / "run") / "_rejects").to_pylist()
    assert [(row["uid"], row["reason"], row["detail"]) for row in rejects] == [
        (uids[2], EXCLUDED_DOMAIN, "localhost is under excluded domain localhost")]
    assert sorted(server.requests) == sorted([f"/img/{names[0]}", f"/noai/{names[1]}"])  # none for localhost


def test_domain_rules_cover_subdomains_and_name_bad_lines(tmp_path):
    listed = tmp_path / "domains.txt"
    listed.write_text("Example.COM.\n\nphotos.org  # a comment\n")
    rules = DomainRules.from_files(str(listed), None)
    assert rules.refusal("https://img.example.com/a.jpg") == "img.example.com is under excluded domain example.com"
    assert rules.refusal("https://notexample.com/a.jpg") is None and rules.refusal("http://photos.org/x") is not None
    scoped = DomainRules.from_files(None, str(listed))
    assert scoped.refusal("https://elsewhere.net/a.jpg") == "elsewhere.net is not under any included domain"
    assert scoped.refusal("https://cdn.photos.org/a.jpg") is None
    listed.write_text("example.com\nhttp://bad.example/path\n")
    with pytest.raises(UserInputError, match=r"domains.txt, line 2: 'http://bad.example/path' is not a domain"):
        DomainRules.from_files(str(listed), None)
    with pytest.raises(UserInputError, match="--include-domains .*missing.txt: cannot read it"):
        DomainRules.from_files(None, str(tmp_path / "missing.txt"))
