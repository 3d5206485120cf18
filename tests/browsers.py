"""What the real-browser tests share: a `streamlit run` server on loopback and Debian's Chromium."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from fer_core.launch import local_server

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flag Chromium keeps calling hosts this machine cannot reach.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]


@contextlib.contextmanager
def streamlit_server(
    log_path: Path, start_timeout_s: float = 90, env: dict[str, str] | None = None
) -> Iterator[str]:
    """A new dashboard server, started as ``make app`` starts it (``python -m fer_core serve``, which is
    ``streamlit run streamlit_app.py`` with a warm-up), on a free loopback port; yields its URL."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(local_server(log_path, env=env, timeout_s=start_timeout_s))
        except RuntimeError as error:
            pytest.fail(f"{error}: {Path(log_path).read_text()}")
        yield url


@contextlib.contextmanager
def tab(browser, height: int = 2000, **options) -> Iterator:
    """A new page in a context of its own (cookies, storage), 1400 px wide; closed afterwards."""
    context = browser.new_context(viewport={"width": 1400, "height": height}, **options)
    try:
        yield context.new_page()
    finally:
        context.close()


@contextlib.contextmanager
def chromium(*extra_args: str):
    """Debian's Chromium through Playwright (no browser download), headless."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()
