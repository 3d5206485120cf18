"""The Video page in a real browser: a video upload to its CSV download, and the live camera with
Chromium's fake camera playing a file built from the real photos.

`streamlit run` on loopback, Debian's Chromium driven by Playwright (as in test_browser.py).
Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest
from browsers import SHOTS, chromium, streamlit_server
from clips import photo, write_clip, write_y4m

from fer_core.emotions import EMOTIONS
from fer_core.video import COLUMNS

# The colour the boxes of happy faces are drawn in (fer_core.figures.EMOTION_COLORS["happy"]).
HAPPY_RGB = (0xFF, 0xBF, 0x00)


@pytest.fixture(scope="module")
def server():
    with streamlit_server(Path(os.environ["FER_RUNS_DIR"]) / "streamlit-video.log") as url:
        yield url


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory, photos) -> Path:
    """What the fake camera films: one smiling face, as a y4m file it plays in a loop."""
    return write_y4m(tmp_path_factory.mktemp("camera") / "face.y4m", [photo(photos, "single_face.jpg")] * 10)


@pytest.fixture(scope="module")
def browser(camera_file):
    camera = (
        "--use-fake-ui-for-media-stream",  # allow the camera without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera_file}",
    )
    with chromium(*camera) as browser:
        yield browser


def _visit_video_page(page, server: str):
    page.goto(f"{server}/video")
    page.get_by_role("heading", name="Video", level=1).wait_for(timeout=120_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=180_000
    )
    assert page.locator('[data-testid="stException"]').count() == 0


def _no_exception(page) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.all_inner_texts()


def test_a_video_upload_gives_timelines_a_playable_copy_and_its_csv(server, page, photos, tmp_path):
    crowd, nobody = photo(photos, "multi_face.jpg"), photo(photos, "no_face.jpg")
    clip = write_clip(tmp_path / "seaside.mp4", [crowd] * 10 + [nobody] * 4 + [crowd] * 10)
    _visit_video_page(page, server)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([clip])
    page.get_by_role("heading", name="Face 5").wait_for(timeout=240_000)
    _no_exception(page)
    # Per face: a share-of-time chart and a timeline; and the annotated copy in a video player.
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 10", timeout=60_000)
    assert page.locator('[data-testid="stVideo"]').count() == 1
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Rows (CSV)").click()
    rows = pd.read_csv(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert list(rows.columns) == list(COLUMNS)
    assert rows["frame"].nunique() == 12 and len(rows) == 5 * 10 + 2  # two sampled frames without a face
    assert sorted(rows["track"].dropna().unique()) == [1, 2, 3, 4, 5]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "video-upload.png", full_page=True)


def _happy_pixels(frame) -> int:
    """Pixels of the annotated camera picture (streamlit-webrtc's iframe) drawn in the happy colour."""
    return frame.locator("video").first.evaluate(
        """(video, rgb) => {
            if (!video.videoWidth) return 0;
            const canvas = document.createElement('canvas');
            canvas.width = video.videoWidth;
            canvas.height = video.videoHeight;
            const context = canvas.getContext('2d');
            context.drawImage(video, 0, 0);
            const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
            let count = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (Math.abs(data[i] - rgb[0]) < 40 && Math.abs(data[i + 1] - rgb[1]) < 40
                    && Math.abs(data[i + 2] - rgb[2]) < 60) count++;
            }
            return count;
        }""",
        list(HAPPY_RGB),
    )


def test_the_live_camera_labels_the_faces_of_a_fake_camera(server, page):
    _visit_video_page(page, server)
    page.get_by_text("Live camera", exact=True).click()
    frame = page.frame_locator('iframe[title*="webrtc"]').first
    frame.get_by_role("button", name=re.compile("start", re.IGNORECASE)).click(timeout=120_000)
    # Annotated frames arrive: the picture has the happy face's box and label drawn in its colour,
    # and the timeline counts frames.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _happy_pixels(page.frame_locator('iframe[title*="webrtc"]')) < 300:
        time.sleep(1)
    assert _happy_pixels(page.frame_locator('iframe[title*="webrtc"]')) >= 300
    status = page.get_by_text(re.compile(r"annotated frames/s"))
    status.wait_for(timeout=60_000)
    time.sleep(4)  # a few seconds of frames, then the timeline's next redraw
    page.get_by_text(re.compile(r"annotated frames/s")).wait_for(timeout=30_000)
    counted = re.search(r"([\d,]+) frames$", page.get_by_text(re.compile(r"annotated frames/s")).inner_text())
    assert counted and int(counted.group(1).replace(",", "")) >= 5
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Last minute (CSV)").click()
    rows = pd.read_csv(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert list(rows.columns) == list(COLUMNS)
    labelled = rows.dropna(subset=["track"])
    assert len(labelled) >= 5 and set(labelled["emotion"]) <= set(EMOTIONS)
    assert (labelled["emotion"] == "happy").mean() >= 0.8
    assert rows["t_sec"].is_monotonic_increasing
    _no_exception(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "video-live.png", full_page=True)
