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
import threading

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
