"""What the real-browser tests share: a `streamlit run` server on loopback and Debian's Chromium."""

from __future__ import annotations

import contextlib
import shutil
import warnings
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


def settle(page) -> None:
    """Wait until the server has no script run going for this page, and check none raised."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=300_000
    )
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.all_inner_texts()


def click_until_shown(page, button: str, shown: str, *, attempts: int = 3, wait_s: float = 60) -> None:
    """Click ``button`` until ``shown`` appears on the page.

    On a loaded 2-core machine a click now and then comes to nothing: the button takes focus, and no
    toast, error, job or line in the server's log follows. It is the frontend's race with a rerun
    still in flight (the one a widget's new value started, whose "running" badge shows only after a
    delay), which no wait on the page can rule out. Buttons that start jobs are safe to press again:
    a second press finds the job running. Fails with the page's text and a screenshot when ``shown``
    never appears.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(1, attempts + 1):
        settle(page)
        page.get_by_role("button", name=button).click()
        try:
            page.get_by_text(shown).first.wait_for(timeout=wait_s * 1000)
            if attempt > 1:  # the summary of the run lists it
                warnings.warn(f"{button!r} needed {attempt} clicks to show {shown!r}", stacklevel=2)
            return
        except PlaywrightTimeout:
            if attempt == attempts:
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=SHOTS / f"lost-click-{button}.png", full_page=True)
                raise AssertionError(
                    f"{shown!r} never appeared after {attempts} clicks on {button!r}; the page says:\n"
                    + page.locator("body").inner_text()
                ) from None
