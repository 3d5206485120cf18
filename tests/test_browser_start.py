"""Fresh dashboard servers in a real browser (Debian's Chromium through Playwright): a bookmarked page as
the very first request, and the Batch page from a zip upload to its results.

Screenshots are kept in ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import zipfile

import pytest
from browsers import SHOTS, click_until_shown, settle, streamlit_server

PAGE_TITLES = ["Home", "Dataset", "Train", "Evaluate", "Predict", "Batch"]


@pytest.fixture()
def fresh_server(tmp_path):
    """A new ``streamlit run`` process that has served nobody yet."""
    with streamlit_server(tmp_path / "streamlit.log") as url:
        yield url


def test_a_bookmarked_page_opened_first_shows_the_apps_navigation_layout_and_sidebar(fresh_server, page):
    page.goto(f"{fresh_server}/evaluate")
    page.get_by_role("heading", name="Evaluate", level=1).wait_for(timeout=120_000)
    navigation = page.locator('[data-testid="stSidebarNav"] a')
    navigation.first.wait_for()
    # Each link is its icon (a font ligature such as "home") and its title; not the pages' file names
    # ("streamlit app", "dataset", ...), which a pages/ folder's discovery would show.
    titles = [text.split("\n")[-1].strip() for text in navigation.all_inner_texts()]
    assert titles[: len(PAGE_TITLES)] == PAGE_TITLES, titles
    assert "streamlit app" not in titles and all(title[:1].isupper() for title in titles), titles
    # The wide layout: the page's content spans the window beside the sidebar (a narrow one is 736 px).
    width = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()["width"]
    assert width > 900, width
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Shipped sample").wait_for()
    sidebar.get_by_text("Master URL").wait_for()
    settle(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "evaluate-first-request.png", full_page=True)


def test_the_batch_page_scores_an_uploaded_zip_of_photos(fresh_server, page, photo_folder, tmp_path):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(photo_folder.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(photo_folder).as_posix())
    page.goto(f"{fresh_server}/batch")
    page.get_by_role("heading", name="Batch", level=1).wait_for(timeout=120_000)
    settle(page)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([archive])
    page.get_by_text("photos.zip").wait_for()
    name = page.get_by_label("Job name", exact=True)
    name.fill("browser-batch")
    name.press("Tab")
    click_until_shown(page, "Start the batch", "browser-batch")
    # The job runs in a process of its own: its Spark progress, then its results, appear by themselves.
    metrics = page.locator('[data-testid="stMetric"]')
    page.locator('[data-testid="stMetricLabel"]', has_text="Errors").wait_for(timeout=600_000)
    settle(page)
    labels = metrics.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    values = dict(
        zip(labels, metrics.locator('[data-testid="stMetricValue"]').all_inner_texts(), strict=True)
    )
    assert values["Photos"] == "7" and values["No face"] == "1" and values["Errors"] == "2"
    assert int(values["Faces"]) >= 7
    page.locator(".js-plotly-plot").first.wait_for()
    # The metrics can be drawn before the rest of the results: wait for the downloads, then count them.
    page.get_by_role("button", name="Download Parquet").wait_for(timeout=120_000)
    assert page.get_by_role("button", name="Download CSV").count() == 1
    assert page.get_by_role("button", name="Download Parquet").count() == 1
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "batch.png", full_page=True)
