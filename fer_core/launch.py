"""Starting the dashboard: ``python -m fer_core serve`` (what ``make app`` runs).

The server process begins what the first page views need as soon as it starts, in the background and
before any visitor arrives: the default data set (its Parquet cache, or a Spark read into it on an
empty cache), then TensorFlow's import, then the SparkSession. Streamlit then serves ``streamlit_app.py``
in this same process, so the first page finds the session running, the data cached and TensorFlow
imported, or waits only for what is still under way (``load_dataset`` lets one read of a source run
at a time, and Python's import lock does the same for TensorFlow).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from fer_core.data import PROJECT_ROOT, DataError, default_source, load_dataset
from fer_core.spark import get_spark, resolve_master

APP = PROJECT_ROOT / "streamlit_app.py"


def start_spark_quietly(master: str | None = None) -> None:
    """Start the SparkSession at a low priority: the JVM takes a core for seconds as it starts, and
    pages being drawn meanwhile should not wait for it. On Linux the nice value is per thread, and the
    JVM launched from this one inherits it. A failure is left for the pages to report."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    with contextlib.suppress(OSError):
        os.nice(10)
    with contextlib.suppress(PySparkException, Py4JError, OSError, RuntimeError):
        get_spark(master)


def _import_tensorflow() -> None:
    with contextlib.suppress(ImportError):
        import keras  # noqa: F401  (most of a first model load is this import)


def warm_up_server(data_path: str | None = None, master: str | None = None) -> threading.Thread:
    """Begin, in background threads, what the first visitor's pages need (see the module's text)."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    master = resolve_master(master)

    def run() -> None:
        # The data first (Home shows it; on an empty cache it is a Spark read that TensorFlow's import
        # would slow down on a small machine), then TensorFlow, then the SparkSession if still needed.
        with contextlib.suppress(DataError, PySparkException, Py4JError, OSError):
            load_dataset(data_path or default_source(), spark_master=master)
        _import_tensorflow()
        start_spark_quietly(master)

    thread = threading.Thread(target=run, name="fer-server-warm-up", daemon=True)
    thread.start()
    return thread


def serve(port: int, streamlit_options: list[str] | None = None) -> None:
    """Start the warm-up, then ``streamlit run streamlit_app.py`` in this process (it returns when
    the server stops)."""
    from streamlit.web.cli import main as streamlit_main

    warm_up_server()
    arguments = ["run", str(APP), "--server.port", str(port), *(streamlit_options or [])]
    streamlit_main(arguments, prog_name="streamlit")


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def local_server(
    log_path: str | os.PathLike,
    *,
    bare: bool = False,
    env: dict[str, str] | None = None,
    timeout_s: float = 120,
) -> Iterator[str]:
    """A new dashboard server on a free loopback port, for tests and benchmarks: started as ``make app``
    starts it (``python -m fer_core serve``) or, with ``bare``, as a plain ``streamlit run
    streamlit_app.py``; its output goes to ``log_path``. Yields its URL once its health check answers
    and stops it afterwards. Raises RuntimeError if it exits first or does not answer in ``timeout_s``.
    """
    port = free_port()
    if bare:
        command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port)]
    else:
        command = [sys.executable, "-m", "fer_core", "serve", "--port", str(port)]
    command += ["--server.address", "127.0.0.1", "--server.headless", "true"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env or os.environ.copy(), stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                exited = process.poll() is not None
                if exited or time.monotonic() > deadline:
                    how = "exited" if exited else f"did not answer within {timeout_s:.0f} s"
                    raise RuntimeError(f"the dashboard server {how}; its log: {Path(log_path)}") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
