"""Load in a real browser: two sessions predict photos over and over while a training runs beside them.

Loopback only, bounded: three photos a session. Every answer must come, belong to the photo its own
session sent (the heading and the number of labelled faces), and the training must finish.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from browsers import SHOTS, chromium, streamlit_server

EMOTIONS = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
FACES = {"single_face.jpg": 1, "multi_face.jpg": 5}
ROUNDS = 3
# True in the page once exactly ``count`` crops are captioned "N: emotion".
LABELLED_FACES = """(count) => [...document.querySelectorAll('[data-testid="stImageCaption"]')]
    .filter(c => /^\\d+: (angry|disgust|fear|happy|sad|surprise|neutral)$/.test(c.innerText))
    .length === count"""


def _labelled_faces(page) -> int:
    captions = page.locator('[data-testid="stImageCaption"]').all_inner_texts()
    return sum(caption.split(": ")[-1] in EMOTIONS for caption in captions)


def test_two_sessions_predict_while_a_third_trains(tmp_path, photos):
    training = subprocess.Popen(
        [sys.executable, "-m", "fer_core", "train", "--preset", "seed", "--max-train-faces", "300",
         "--steps", "400", "--eval-every", "100", "--out", str(tmp_path / "run")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy(),
    )  # fmt: skip
    try:
        with streamlit_server(tmp_path / "streamlit.log") as url, chromium() as browser:
            pages = [
                browser.new_context(viewport={"width": 1400, "height": 2000}).new_page() for _ in range(2)
            ]
            for page in pages:
                page.goto(f"{url}/predict")
                page.get_by_role("heading", name="Predict", level=1).wait_for(timeout=180_000)
            seconds = []
            names = list(FACES)
            for round_number in range(ROUNDS):
                # Each session sends another photo than the other session and than its own last one.
                sent = [names[(round_number + index) % 2] for index in range(len(pages))]
                if round_number:  # the uploader keeps adding files: take the last one away first
                    for page in pages:
                        page.locator('[data-testid="stFileChipDeleteBtn"]').first.click()
                        page.get_by_text("Upload one or more photos").wait_for(timeout=120_000)
                started = time.monotonic()
                for page, name in zip(pages, sent, strict=True):
                    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
                        [photos / name]
                    )
                for page, name in zip(pages, sent, strict=True):
                    page.get_by_role("heading", name=name).wait_for(timeout=180_000)
                    page.wait_for_function(LABELLED_FACES, arg=FACES[name], timeout=180_000)
                    seconds.append(time.monotonic() - started)
                    other = names[1 - names.index(name)]
                    assert page.get_by_role("heading", name=other).count() == 0  # not the other session's
                    assert _labelled_faces(page) == FACES[name]
                    assert page.locator('[data-testid="stException"]').count() == 0
            SHOTS.mkdir(parents=True, exist_ok=True)
            pages[0].screenshot(path=SHOTS / "predict-under-load.png", full_page=True)
        assert len(seconds) == ROUNDS * len(pages)
        print(
            f"\nphoto latency under load (upload to labelled faces), {len(seconds)} answers: "
            f"median {statistics.median(seconds):.1f} s, max {max(seconds):.1f} s"
        )
        assert training.wait(timeout=600) == 0, training.stderr.read().decode()[-2000:]
    finally:
        if training.poll() is None:
            training.kill()
