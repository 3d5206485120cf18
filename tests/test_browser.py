"""The dashboard in a real browser: `streamlit run` on loopback, Debian's Chromium driven by Playwright.

Screenshots of each page are kept in ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browsers import SHOTS, click_until_shown, streamlit_server, tab


@pytest.fixture(scope="module")
def server():
    with streamlit_server(Path(os.environ["FER_RUNS_DIR"]) / "streamlit.log") as url:
        yield url


@pytest.fixture()
def page(browser):
    with tab(browser, height=2400) as page:
        yield page


def _visit(page, url: str, title: str):
    page.goto(url)
    page.get_by_role("heading", name=title, level=1).wait_for(timeout=120_000)
    page.wait_for_load_state("networkidle")
    # Streamlit shows a running indicator while the script runs; wait for the page to settle.
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=180_000
    )
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.all_inner_texts()
    return page


@pytest.mark.parametrize(
    ("path", "title"),
    [("", "Facial expression recognition"), ("dataset", "Dataset"), ("train", "Train"),
     ("evaluate", "Evaluate"), ("predict", "Predict")],
)  # fmt: skip
def test_every_page_renders(server, page, path, title):
    _visit(page, f"{server}/{path}", title)
    if path == "evaluate":
        page.get_by_text("Confusion matrix").wait_for()
        page.locator(".js-plotly-plot").first.wait_for()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{path or 'home'}.png", full_page=True)


def test_predict_labels_the_faces_of_uploaded_photos(server, page, photos):
    _visit(page, f"{server}/predict", "Predict")
    files = [photos / name for name in ("single_face.jpg", "multi_face.jpg", "no_face.jpg")]
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(files)
    page.get_by_text("No face was found in this image.").wait_for(timeout=180_000)
    page.get_by_role("heading", name="multi_face.jpg").wait_for()
    # One probability chart per face: 1 + 5.
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 6", timeout=120_000)
    captions = page.locator('[data-testid="stImageCaption"]').all_inner_texts()
    emotions = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    labelled = [caption for caption in captions if caption.split(": ")[-1] in emotions]
    assert len(labelled) == 6
    # Grad-CAM: one overlay per face of each photo with faces, in an expander per photo.
    expanders = page.get_by_text("Where the network looked (Grad-CAM)")
    assert expanders.count() == 2
    for index in range(2):
        expanders.nth(index).click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stImageCaption"]')]
                 .filter(caption => caption.innerText.includes(': looked for ')).length === 6""",
        timeout=120_000,
    )
    assert page.locator('[data-testid="stException"]').count() == 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "predict-photos.png", full_page=True)


def test_predict_refuses_a_file_that_is_not_an_image(server, page, tmp_path):
    fake = tmp_path / "holiday.png"
    fake.write_bytes(b"this is not a picture at all")
    _visit(page, f"{server}/predict", "Predict")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([fake])
    page.get_by_text("holiday.png cannot be read").wait_for(timeout=120_000)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_short_training_started_in_the_browser_finishes(server, page):
    _visit(page, f"{server}/train", "Train")
    for label, value in (
        ("Steps", "40"),
        ("Validate every (steps)", "20"),
        ("Training faces (0 = all)", "300"),
    ):
        field = page.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Tab")
    name = page.get_by_label("Run name", exact=True)
    name.fill("browser-run")
    name.press("Tab")
    click_until_shown(page, "Start training", "browser-run")
    page.reload()  # the job is a process of its own: a reload finds it running or finished
    _visit(page, f"{server}/train", "Train")
    page.get_by_text("browser-run finished after 40 steps").wait_for(timeout=300_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "train-finished.png", full_page=True)
