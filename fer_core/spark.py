"""The one place that builds the SparkSession."""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_MASTER = "local[*]"
MASTER_ENV = "FER_SPARK_MASTER"
# Where the JVM's class-data-sharing archive lives (see class_archive); "off" switches it off.
CLASS_ARCHIVE_ENV = "FER_SPARK_CLASS_ARCHIVE_DIR"
DEFAULT_CLASS_ARCHIVE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "jvm"
_QUIET_CDS = "-Xlog:cds=off -Xlog:cds+dynamic=off"
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
    launching = _session is None or _session.sparkContext._jsc is None
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "2000")
        .config("spark.sql.shuffle.partitions", os.environ.get("FER_SPARK_PARTITIONS", "8"))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", os.environ.get("FER_SPARK_DRIVER_MEMORY", "4g"))
    )
    archive_options = _class_archive_options() if launching else None
    if archive_options:
        builder = builder.config("spark.driver.extraJavaOptions", archive_options)
    _session = builder.getOrCreate()
    _session.sparkContext.setLogLevel("ERROR")
    if not master.startswith("local"):
        # Executors on a cluster run the UDFs of fer_core: ship the package with the job, as an archive
        # each executor unpacks into a fer_core/ folder of its working directory (on its workers' Python
        # path). Unlike a zip on the path (addPyFile), the package's data files stay files there.
        _session.sparkContext.addArchive(f"{_package_zip()}#fer_core")
    return _session


_recording: Path | None = None  # the archive this process's JVM writes as it exits


def record_class_archive() -> None:
    """Let the JVM this process starts write the class-data-sharing archive when it exits, if there is
    none yet (the command line does this; a dashboard server, whose JVM lives on, only uses one)."""
    global _recording
    archive = class_archive()
    if archive is not None and not archive.exists() and _recording is None:
        _recording = archive.with_name(f"{archive.name}.{os.getpid()}.tmp")


def class_archive() -> Path | None:
    """The JVM's class-data-sharing archive (AppCDS) for this Java and this Spark, or None if switched
    off. It maps the thousands of classes Spark loads, parsed and verified, straight into memory: here
    it halves the SparkSession's start and its first job (11.3 s to 6.5 s for the sample, empty cache).
    Its name depends on the java binary and Spark's jars, since an archive only fits the classpath that
    made it."""
    folder = os.environ.get(CLASS_ARCHIVE_ENV) or str(DEFAULT_CLASS_ARCHIVE_DIR)
    java = _java()
    if folder == "off" or java is None:
        return None
    import pyspark

    jars = Path(pyspark.__file__).resolve().parent / "jars"
    stamp = f"{java}:{java.stat().st_mtime_ns}:{jars}:{pyspark.__version__}"
    return Path(folder) / f"spark-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}.jsa"


def _java() -> Path | None:
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).exists() else None


def _class_archive_options() -> str | None:
    """JVM options that use the archive, or that record it as the JVM exits (see
    :func:`record_class_archive`), or None."""
    archive = class_archive()
    if archive is None:
        return None
    if archive.exists():
        return f"-XX:SharedArchiveFile={archive} {_QUIET_CDS}"
    if _recording is None:
        return None
    _recording.parent.mkdir(parents=True, exist_ok=True)
    atexit.register(_finish_recording, _recording, archive)
    return f"-XX:ArchiveClassesAtExit={_recording} {_QUIET_CDS}"


def _finish_recording(recording: Path, archive: Path) -> None:
    """At exit: end the JVM, which writes the archive as it exits, then adopt the archive."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    process = getattr(gateway, "proc", None)
    try:
        if _session is not None:
            _session.stop()
        if process is not None:
            gateway.shutdown()
            process.stdin.close()  # the JVM exits when its stdin closes
            process.wait(timeout=120)
        adopt_class_archive(recording, archive)
    except (OSError, subprocess.SubprocessError, RuntimeError):
        recording.unlink(missing_ok=True)  # no archive this time: Spark starts without one, as before


def adopt_class_archive(recording: Path, archive: Path) -> bool:
    """Move a recorded archive into place only if a JVM starts with it: a truncated one (a full disk, a
    JVM killed while writing it) would crash every later start. The recording is removed either way."""
    try:
        check = [str(_java()), f"-XX:SharedArchiveFile={recording}", *_QUIET_CDS.split(), "-version"]
        usable = False
        if recording.exists():
            with tempfile.TemporaryDirectory() as scratch:  # where a crashing JVM leaves its hs_err_pid log
                done = subprocess.run(check, capture_output=True, timeout=60, cwd=scratch)
            usable = done.returncode == 0
        if usable:
            os.replace(recording, archive)
        return usable
    finally:
        recording.unlink(missing_ok=True)


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
