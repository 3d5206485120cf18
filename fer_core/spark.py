"""The one place that builds the SparkSession."""

from __future__ import annotations

import os
import sys

DEFAULT_MASTER = "local[*]"
MASTER_ENV = "FER_SPARK_MASTER"


def resolve_master(master: str | None = None) -> str:
    """The master URL to use: the argument, else ``$FER_SPARK_MASTER``, else ``local[*]``."""
    return master or os.environ.get(MASTER_ENV) or DEFAULT_MASTER


def get_spark(master: str | None = None, app_name: str = "fer-core"):
    """Get or create the SparkSession for ``master`` (local, ``spark://``, ``yarn``, ``k8s://``).

    Arrow is switched on so that DataFrames cross into pandas/numpy in columnar batches.
    """
    from pyspark.sql import SparkSession  # heavy import, kept out of module import time

    master = resolve_master(master)
    if master.startswith("local"):
        # Local workers must run the driver's interpreter (and its packages), not the first python3.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "2000")
        .config("spark.sql.shuffle.partitions", os.environ.get("FER_SPARK_PARTITIONS", "8"))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", os.environ.get("FER_SPARK_DRIVER_MEMORY", "4g"))
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
