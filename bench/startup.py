"""How long a fresh dashboard server makes its first visitor wait, measured in a real browser.

    python -m bench.startup [--runs N] [--launchers serve,streamlit] [--no-cold]

Each run starts a new server on a loopback port, as ``make app`` does (``python -m fer_core serve``:
Spark, the default data and TensorFlow start loading with the process) or with a bare ``streamlit
run streamlit_app.py`` (they start at the first request), so nothing is in memory: no SparkSession,
TensorFlow not imported. It opens Home in Debian's Chromium as soon as the server answers its health
check, and times:

- Home complete: from the first request until Home shows the model in use and the data in use;
- Dataset chart: from the click on Dataset in the navigation until its first chart is drawn;
- /evaluate first: on another fresh server, a bookmarked /evaluate as the very first request, until
  the app's own navigation and the Evaluate page's first chart are drawn.

Cache states: the shipped sample's Parquet cache and the JVM's class archive on disk (what ``make
app`` leaves before it starts the server), an empty data cache (the data must go through Spark
first), and nothing at all on disk (no class archive either: the JVM loads Spark's classes from the
jars).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from fer_core.launch import local_server

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TIMEOUT_MS = 300_000


@contextlib.contextmanager
def fresh_server(env: dict[str, str], launcher: str = "serve") -> Iterator[str]:
    """A new server process on a free loopback port, started as ``make app`` does (``python -m fer_core
    serve``) or with a bare ``streamlit run streamlit_app.py``; yields its URL once it is healthy."""
    log_path = Path(tempfile.mkdtemp(prefix="bench-startup-")) / "streamlit.log"
    with local_server(log_path, bare=launcher != "serve", env=env) as url:
        yield url


@contextlib.contextmanager
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _settled(page) -> None:
    """Wait until no script runs (Streamlit's running indicator is gone)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS
    )


def time_home_then_dataset(chromium, url: str) -> tuple[float, float]:
    """Seconds until Home is complete (model and data in use), then until Dataset's first chart."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    try:
        started = time.monotonic()
        page.goto(url)
        for label in ("PrivateTest accuracy", "Faces"):
            page.locator('[data-testid="stMetricLabel"]', has_text=label).first.wait_for(timeout=TIMEOUT_MS)
        home = time.monotonic() - started
        _settled(page)
        started = time.monotonic()
        page.locator('[data-testid="stSidebarNav"] a', has_text="Dataset").click()
        page.locator(".js-plotly-plot").first.wait_for(timeout=TIMEOUT_MS)
        return home, time.monotonic() - started
    finally:
        context.close()


def time_bookmarked_page(chromium, url: str, path: str = "evaluate") -> float:
    """Seconds from a first request for ``url/path`` until the app's navigation and a chart show."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    try:
        started = time.monotonic()
        page.goto(f"{url}/{path}")
        page.locator('[data-testid="stSidebarNav"] a', has_text="Home").wait_for(timeout=TIMEOUT_MS)
        page.locator(".js-plotly-plot").first.wait_for(timeout=TIMEOUT_MS)
        return time.monotonic() - started
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="fresh servers per cache state (3)")
    parser.add_argument(
        "--launchers", default="serve,streamlit", help="serve (make app's), streamlit (a bare streamlit run)"
    )
    parser.add_argument("--no-cold", action="store_true", help="skip the empty-cache runs")
    args = parser.parse_args()

    # What `make app` does before its server starts: the sample's Parquet cache and the JVM's class
    # archive, which the first command line run on a machine leaves behind.
    subprocess.run([sys.executable, "-m", "fer_core", "stats"], cwd=ROOT, check=True, capture_output=True)
    base = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    states = [("data cached", False, True)]
    if not args.no_cold:
        states += [("empty data cache", True, True), ("empty cache, no JVM archive", True, False)]
    rows = []
    with browser() as chromium:
        for launcher in args.launchers.split(","):
            for state, cold, archive in states:
                homes, datasets, evaluates = [], [], []
                for _ in range(args.runs):
                    with contextlib.ExitStack() as stack:
                        env = dict(base)
                        if not archive:
                            env["FER_SPARK_CLASS_ARCHIVE_DIR"] = stack.enter_context(
                                tempfile.TemporaryDirectory()
                            )
                        if cold:
                            env["FER_CACHE_DIR"] = stack.enter_context(tempfile.TemporaryDirectory())
                        with fresh_server(env, launcher) as url:
                            home, dataset = time_home_then_dataset(chromium, url)
                        if cold:
                            env["FER_CACHE_DIR"] = stack.enter_context(tempfile.TemporaryDirectory())
                        with fresh_server(env, launcher) as url:
                            evaluate = time_bookmarked_page(chromium, url)
                    homes.append(home)
                    datasets.append(dataset)
                    evaluates.append(evaluate)
                rows.append((launcher, state, homes, datasets, evaluates))

    load = os.getloadavg()[0]
    print(
        f"fresh servers, {args.runs} per launcher and cache state, {os.cpu_count()} cores, load {load:.1f}\n"
    )
    header = f"{'launcher':<11}{'cache':<29}{'Home complete s':>18}{'then Dataset chart s':>22}"
    print(header + f"{'/evaluate first s':>19}")
    for launcher, state, homes, datasets, evaluates in rows:
        cells = [
            f"{statistics.median(v):5.1f} ({min(v):.1f}-{max(v):.1f})" for v in (homes, datasets, evaluates)
        ]
        print(f"{launcher:<11}{state:<29}{cells[0]:>18}{cells[1]:>22}{cells[2]:>19}")
    print("\nmedian (min-max); Home complete counts from the first request to a server that just came up.")


if __name__ == "__main__":
    main()
