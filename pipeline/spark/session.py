"""One SparkSession per process, configured for Arrow batches and the project's interpreter."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession


def _under_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands its gateway port to the Python driver."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(app_name: str = "metacurate", master: str | None = None) -> SparkSession:
    """The active session, or a new one; the master comes from spark-submit unless given.

    Run as a plain Python program, the default is local mode on every core. Workers use this
    interpreter unless PYSPARK_PYTHON says otherwise, so the project's packages import there.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master or not _under_spark_submit():
        builder = builder.master(master or "local[*]")
        builder = builder.config("spark.sql.shuffle.partitions", str(4 * (os.cpu_count() or 1)))
    spark = (
        builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", "65536")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel(os.environ.get("METACURATE_SPARK_LOG_LEVEL", "ERROR"))
    return spark
