"""Python tasks writing their own Parquet parts: every row lands once, counted by reason, never half a part."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.errors import PythonException

from pipeline.run.directory import REJECT_SCHEMA
from pipeline.spark.task_writes import ParquetParts, write_from_tasks

EVEN = pa.schema([("n", pa.int64()), ("square", pa.int64())])


def split_even_odd():
    """Even numbers with their square; odd ones as rejects, a reason each (multiples of 3 another one).

    Made inside a function so that Spark ships it by value: workers cannot import test modules.
    """
    def split(batches):
        for batch in batches:
            numbers = batch.column("n").to_pylist()
            even = [n for n in numbers if n % 2 == 0]
            odd = [n for n in numbers if n % 2]
            yield {"rows": pa.table({"n": even, "square": [n * n for n in even]}, schema=EVEN),
                   "rejects": pa.table({"uid": [str(n) for n in odd],
                                        "reason": ["odd_of_three" if n % 3 == 0 else "odd" for n in odd]})}
    return split


def test_rows_and_rejects_land_once_with_counts_by_reason(spark, tmp_path):
    numbers = spark.range(0, 10_000, numPartitions=7).withColumnRenamed("id", "n")
    counts = write_from_tasks(numbers, split_even_odd(),
                              {"rows": (tmp_path / "rows", EVEN), "rejects": (tmp_path / "rejects", REJECT_SCHEMA)})

    rows = pq.read_table(tmp_path / "rows")
    assert sorted(rows.column("n").to_pylist()) == list(range(0, 10_000, 2))
    assert rows.column("square").to_pylist() == [n * n for n in rows.column("n").to_pylist()]
    rejects = pq.read_table(tmp_path / "rejects")
    assert rejects.schema.names == REJECT_SCHEMA.names  # columns the tasks did not give are there, null
    assert rejects.column("detail").null_count == rejects.num_rows
    assert sorted(int(uid) for uid in rejects.column("uid").to_pylist()) == list(range(1, 10_000, 2))
    assert counts["rows"] == {None: 5000}
    assert counts["rejects"] == {"odd_of_three": 1667, "odd": 3333}
    assert sorted(path.name for path in (tmp_path / "rows").iterdir()) == [f"part-{i:05d}.parquet" for i in range(7)]
    assert spark.read.parquet(str(tmp_path / "rows")).count() == 5000


def test_a_failing_task_leaves_no_part_of_its_own(spark, tmp_path):
    def fail_on_partition_with_4242(batches):
        for batch in batches:
            yield {"rows": pa.table({"n": batch.column("n"), "square": batch.column("n")}, schema=EVEN)}
            if 4242 in batch.column("n").to_pylist():
                raise ValueError("task dies after writing a batch")

    numbers = spark.range(0, 10_000, numPartitions=4).withColumnRenamed("id", "n")
    with pytest.raises(PythonException, match="task dies after writing a batch"):
        write_from_tasks(numbers, fail_on_partition_with_4242, {"rows": (tmp_path, EVEN)})
    # Partition 1 holds 2500..4999: its part was never committed and its temporary file is gone.
    names = {path.name for path in tmp_path.iterdir()}
    assert "part-00001.parquet" not in names and ".part-00001.parquet.attempt-0" not in names


def test_no_rows_still_gives_a_readable_folder_and_parts_are_never_mixed(spark, tmp_path):
    nothing = spark.range(0, 10, numPartitions=2).withColumnRenamed("id", "n").filter("n < 0")
    counts = write_from_tasks(nothing, split_even_odd(), {"rows": (tmp_path / "empty", EVEN)})
    frame = spark.read.parquet(str(tmp_path / "empty"))
    assert counts["rows"] == {} and frame.count() == 0 and frame.columns == ["n", "square"]
    with pytest.raises(RuntimeError, match="already holds parts"):
        write_from_tasks(nothing, split_even_odd(), {"rows": (tmp_path / "empty", EVEN)})


def test_tasks_that_read_parquet_parts_themselves_see_every_row_once(spark, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for part in range(3):  # parts of several row groups each, and a column the reader does not ask for
        numbers = list(range(part * 5000, (part + 1) * 5000))
        pq.write_table(pa.table({"n": numbers, "label": [str(n) for n in numbers]}),
                       source / f"part-{part:05d}.parquet", row_group_size=1200)
    (source / ".part-00009.parquet.attempt-0").write_bytes(b"a task's unfinished part")
    (source / "_rejects").mkdir()
    parts = ParquetParts(spark, source, ["n"])
    assert parts.frame.count() == 3 * 5 and parts.frame.rdd.getNumPartitions() > 1

    split = split_even_odd()

    def split_checking_columns(batches):
        for batch in batches:
            assert batch.schema.names == ["n"]
            yield from split(iter([batch]))

    counts = write_from_tasks(parts, split_checking_columns,
                              {"rows": (tmp_path / "rows", EVEN), "rejects": (tmp_path / "rejects", REJECT_SCHEMA)})
    assert sorted(pq.read_table(tmp_path / "rows").column("n").to_pylist()) == list(range(0, 15_000, 2))
    assert counts["rows"] == {None: 7500} and sum(counts["rejects"].values()) == 7500
