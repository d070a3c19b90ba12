"""Validation and dedup of downloaded images: real images, served on 127.0.0.1, downloaded by img2dataset."""

from __future__ import annotations

import json
from io import BytesIO

import pyarrow.parquet as pq
from PIL import Image

from pipeline.experiments.image_server import ImageServer
from pipeline.image.check import ImageLimits, hamming, inspect_image, perceptual_hash
from pipeline.image.download import STATUS, run_download, selection_from_urls
from pipeline.image.neardup import band_values, duplicate_groups, losers, removed_by_distance
from pipeline.spark.validate import run_validate
from tests.helpers import OPTIONS, SHARED, require_shared_data

UKBENCH = SHARED / "dedup" / "ukbench"


def test_limits_use_the_source_size_and_say_why():
    image = Image.new("RGB", (300, 90), "white")
    data = BytesIO()
    image.save(data, "PNG")
    limits = ImageLimits(min_side=200, max_aspect=3)
    assert inspect_image(data.getvalue(), limits).reason == "too_small"
    assert inspect_image(data.getvalue(), limits, source_size=(900, 270)).reason == "extreme_aspect"
    assert inspect_image(data.getvalue(), limits, source_size=(600, 300)).reason is None
    broken = inspect_image(data.getvalue()[:40], limits)
    assert broken.reason == "undecodable" and broken.phash is None and len(broken.sha256) == 64


def test_perceptual_hash_survives_resize_and_gray_but_not_another_photo():
    require_shared_data(UKBENCH)
    with Image.open(UKBENCH / "base" / "ukbench00120.jpg") as photo:
        base = perceptual_hash(photo)
        small = perceptual_hash(photo.resize((160, 120)))
        gray = perceptual_hash(photo.convert("L"))
    with Image.open(UKBENCH / "base" / "ukbench01380.jpg") as other:
        different = perceptual_hash(other)
    assert hamming(base, small) <= 2 and hamming(base, gray) <= 2
    assert hamming(base, different) >= 16


def test_groups_are_single_linkage_and_the_largest_then_smallest_uid_is_kept():
    groups = duplicate_groups([("b", "c"), ("c", "d"), ("x", "y")])
    assert sorted(map(sorted, groups)) == [["b", "c", "d"], ["x", "y"]]
    replaced = losers(groups, {"b": 100, "c": 400, "d": 400, "x": 5, "y": 5})
    assert replaced == {"b": "c", "d": "c", "y": "x"}
    assert band_values(-1) == [0xFFFF] * 4 and band_values(1 << 16) == [0, 1, 0, 0]


def test_ukbench_duplicates_found_distinct_photos_kept(spark, tmp_path):
    require_shared_data(UKBENCH)
    truth = json.loads((SHARED / "dedup" / "ukbench.json").read_text())
    files = {path.relative_to(UKBENCH).as_posix(): path for path in sorted(UKBENCH.rglob("*")) if path.is_file()}
    with ImageServer({name.replace("/", "__"): path for name, path in files.items()}) as server:
        selection_from_urls(tmp_path, [server.url("img", name.replace("/", "__")) for name in files])
        download = run_download(tmp_path, OPTIONS)
    manifest = run_validate(spark, tmp_path, ImageLimits(min_side=0, max_aspect=float("inf")), max_distance=6)
    names = {row["uid"]: row["url"].rsplit("/", 1)[1].replace("__", "/")
             for row in pq.read_table(tmp_path / "download" / STATUS).to_pylist()}
    rows = {names[row["uid"]]: row for row in pq.read_table(tmp_path / "validate").to_pylist()}
    assert manifest["rows_in"] == download["rows_out"] == len(rows)
    assert manifest["rows_in"] == manifest["rows_out"] + sum(manifest["rejected"].values())
    kept = {name for name, row in rows.items() if row["status"] == "kept"}
    # the corrupt JPEG never reaches validation: img2dataset could not decode it
    assert "bad/ukbench09268_corrupt.jpg" not in rows
    near_exact = set(truth["exact_or_near_exact"])
    assert all(rows[name]["reason"] in ("duplicate", "near_duplicate") for name in near_exact)
    assert all(names[rows[name]["duplicate_of"]] in kept for name in near_exact)
    # the ten distinct photos: each is kept, or its pixel-identical RGBA copy is kept in its place
    for photo in sorted(name for name in files if name.startswith("base/")):
        stand_in = names[rows[photo]["duplicate_of"]] if rows[photo]["duplicate_of"] else photo
        assert stand_in in kept and (stand_in == photo or stand_in == "bad/alpha_channel_image.png")
    assert set(truth["geometric_variants"]) <= kept  # flips and rotations are not near-exact copies
    assert {"formats/Iggy.1024.ppm", "formats/baboon.pgm", "formats/copyleft.tiff", "formats/giphy.gif",
            "formats/marbles.pbm"} <= kept


def test_removed_by_distance_counts_what_single_linkage_would_remove_at_each_threshold():
    base, other = 0x0F0F_1234_5678_9ABC, -0x1234_5678_9ABC_DEF0  # signed, as stored in the validate stage
    hashes = [base, base, base ^ 0b1, base ^ 0b111, other, other ^ (0b1011 << 40)]
    # 0 bits: the exact copy; 1: + the 1-bit neighbour; 2: + the 3-bit one (2 bits from it: a chain);
    # 3: + the other image's 3-bit copy. The two bases are far apart at every threshold shown.
    assert removed_by_distance(hashes, [0, 1, 2, 3, 8]) == {0: 1, 1: 2, 2: 3, 3: 4, 8: 4}
    assert hamming(base, other) > 8
