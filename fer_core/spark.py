"""The one place that builds the SparkSession."""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

DEFAULT_MASTER = "local[*]"
MASTER_ENV = "FER_SPARK_MASTER"
_session = None  # the session built here last; replaced when another master is asked for
# "java.io.EOFException: Unexpected end" or "UnicodeDecodeError: 'utf-8' codec ...", in a trace.
_CAUSE = re.compile(r"^(?:Caused by: )?(?:[\w$]+\.)*([\w$]*(?:Error|Exception)): (.+)$")
# Spark's and py4j's wrappers, which say that a job failed but not why.
_WRAPPERS = {
    "SparkException",
    "SparkRuntimeException",
    "PythonException",
    "PySparkException",
    "Py4JJavaError",
}


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
    global _session
    if _session is not None and _session.sparkContext.master != master:
        _session.stop()  # a session is bound to its master: switching clusters needs a new one
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "2000")
        .config("spark.sql.shuffle.partitions", os.environ.get("FER_SPARK_PARTITIONS", "8"))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", os.environ.get("FER_SPARK_DRIVER_MEMORY", "4g"))
    )
    _session = builder.getOrCreate()
    _session.sparkContext.setLogLevel("ERROR")
    if not master.startswith("local"):
        # Executors on a cluster run the UDFs of fer_core: ship the package with the job, as an archive
        # each executor unpacks into a fer_core/ folder of its working directory (on its workers' Python
        # path). Unlike a zip on the path (addPyFile), the package's data files stay files there.
        _session.sparkContext.addArchive(f"{_package_zip()}#fer_core")
    return _session


@functools.cache
def _package_zip() -> Path:
    """fer_core's files as a zip for ``addArchive`` (made once per process)."""
    package = Path(__file__).resolve().parent
    base = Path(tempfile.mkdtemp(prefix="fer-core-")) / "fer_core"
    ignored = shutil.ignore_patterns("__pycache__")
    staging = Path(tempfile.mkdtemp(prefix="fer-core-src-")) / "fer_core"
    shutil.copytree(package, staging, ignore=ignored)
    return Path(shutil.make_archive(str(base), "zip", root_dir=staging))


def error_summary(error: BaseException) -> str:
    """One line saying why a Spark job failed: the root cause at the bottom of the Java or Python
    traceback Spark wraps it in (``UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff ...``),
    rather than "An exception was thrown from the Python worker"."""
    text = str(error)
    causes = [
        f"{match[1]}: {match[2].strip()}"
        for line in text.splitlines()
        if (match := _CAUSE.match(line.strip())) and match[1] not in _WRAPPERS
    ]
    if causes:
        return causes[-1][:300]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__
