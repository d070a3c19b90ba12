"""One SparkSession per process, configured for Arrow batches and the project's interpreter."""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

PACKAGE_DIR = Path(__file__).resolve().parent.parent
ARROW_BATCH_ROWS = 65536  # rows per Arrow batch handed to Python tasks
# Every Python task has a fixed cost in its worker and in the JVM (an empty mapInArrow task: about
# 70 ms of CPU); on 1M captions, 2 tasks per core beat 4 by 10-15% and 8 were slower still, while
# 2 still lets a core that finishes early take over work.
TASKS_PER_CORE = 2


def _under_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands its gateway port to the Python driver."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def package_zip(destination: Path) -> Path:
    """The `pipeline` package as a zip that Python can import from (what --py-files would ship)."""
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as archive:
        for source in sorted([*PACKAGE_DIR.rglob("*.py"), *PACKAGE_DIR.rglob("*.json")]):
            archive.write(source, source.relative_to(PACKAGE_DIR.parent).as_posix())
    return destination


def get_spark(app_name: str = "metacurate", master: str | None = None) -> SparkSession:
    """The active session, or a new one; the master comes from spark-submit unless given.

    Run as a plain Python program, the default is local mode on every core. Workers use this
    interpreter unless PYSPARK_PYTHON says otherwise. On a cluster the package itself is shipped to
    the executors, so they need only its dependencies installed.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master or not _under_spark_submit():
        builder = builder.master(master or "local[*]")
        builder = builder.config("spark.sql.shuffle.partitions", str(4 * (os.cpu_count() or 1)))
    spark = (
        builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel(os.environ.get("METACURATE_SPARK_LOG_LEVEL", "ERROR"))
    if not spark.sparkContext.master.startswith("local"):
        spark.sparkContext.addPyFile(str(package_zip(Path(tempfile.mkdtemp()) / "pipeline.zip")))
    return spark


def spread(spark: SparkSession, rows: list[tuple], schema: str) -> DataFrame:
    """Small rows that each name some work (a file, a row group) as a DataFrame in up to TASKS_PER_CORE
    partitions per core, in order, for tasks that read their input themselves."""
    slices = max(1, min(len(rows), TASKS_PER_CORE * spark.sparkContext.defaultParallelism))
    return spark.createDataFrame(spark.sparkContext.parallelize(rows, slices), schema)
