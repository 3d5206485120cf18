"""Every dashboard page under Streamlit's AppTest, and a tiny training run from Train to Evaluate."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fer_core import jobs
from fer_core.artifacts import MODELS_DIR, load_model, read_card, runs_dir

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
PAGES = [f"app_pages/{name}.py" for name in ("1_dataset", "2_train", "3_evaluate", "4_predict")]


@pytest.fixture()
def app(spark):
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    assert not at.exception
    return at


def _open(at: AppTest, page: str) -> AppTest:
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [error.value for error in at.error]
    return at


def test_home_shows_the_model_and_the_data(app):
    assert app.title[0].value == "Facial expression recognition"
    labels = [metric.label for metric in app.metric]
    assert "PrivateTest accuracy" in labels and "Faces" in labels
    assert app.sidebar.radio(key="data_source").value == "Shipped sample"


def test_dataset_page_shows_counts_faces_and_statistics(app):
    at = _open(app, PAGES[0])
    assert [metric.label for metric in at.metric][:4] == ["Faces", "Training", "PublicTest", "PrivateTest"]
    assert len(at.get("plotly_chart")) == 2  # counts and histogram
    assert len(at.get("image")) >= 2  # sample faces and mean faces
    headers = [header.value for header in at.subheader]
    assert {"Sample faces", "Mean face of each emotion", "Pixel intensities", "Rejected rows"} <= set(headers)


def test_dataset_page_reports_a_bad_path_politely(app):
    app.sidebar.radio(key="data_source").set_value("Path on the server").run()
    app.sidebar.text_input(key="data_path").input("data/nowhere.csv").run()  # in an allowed folder
    at = app.switch_page(PAGES[0]).run()
    assert not at.exception
    assert "not found" in at.error[0].value


def test_evaluate_page_shows_accuracy_confusion_and_feature_maps(app):
    at = _open(app, PAGES[2])
    labels = [metric.label for metric in at.metric]
    assert labels[:2] == ["Accuracy", "Faces"]
    headers = [header.value for header in at.subheader]
    expected = (
        "Confusion matrix",
        "Per emotion",
        "Calibration",
        "Training curves",
        "Feature maps",
        "Misclassified faces",
    )
    assert set(expected) <= set(headers)
    assert len(at.get("plotly_chart")) >= 5  # with the reliability diagram
    assert "Expected calibration error" in labels
    assert len(at.get("download_button")) == 3
    images = len(at.get("image"))
    at.toggle(key="wrong_cam").set_value(True).run()  # Grad-CAM overlays of the misclassified faces
    assert not at.exception and len(at.get("image")) == images
    # The test-time augmentation starts at the model's own (from its card); another one re-predicts.
    picker = next(box for box in at.selectbox if box.label == "Test-time augmentation")
    own = load_model().tta
    assert picker.value == own
    other = next(mode for mode in ("none", "flip", "crops") if mode != own)
    picker.set_value(other).run()
    assert not at.exception and [metric.label for metric in at.metric][:2] == ["Accuracy", "Faces"]


@pytest.mark.parametrize("page", PAGES)
def test_a_page_run_without_the_entry_script_draws_the_sidebar_itself(spark, page):
    """A page run alone (as AppTest and a page's own script run) still draws the shared sidebar."""
    at = AppTest.from_file(str(Path(APP).parent / page), default_timeout=240).run()
    assert not at.exception, at.exception
    if page != PAGES[3]:  # Predict reads no data set
        assert at.sidebar.radio(key="data_source").value == "Shipped sample"


def test_predict_page_asks_for_photos(app):
    at = _open(app, PAGES[3])
    assert "Upload" in at.info[0].value


def test_train_page_runs_a_tiny_distillation_that_shows_up_on_evaluate(app):
    at = _open(app, PAGES[1])
    prefix = "seed_"
    teacher = MODELS_DIR / "fast"
    at.selectbox(key=prefix + "teacher").set_value(str(teacher))
    at.number_input(key=prefix + "steps").set_value(40)
    at.number_input(key=prefix + "eval").set_value(20)
    at.number_input(key=prefix + "max_faces").set_value(300)
    at.text_input(key=prefix + "name").input("apptest-run")
    at.button[0].click()  # the form's Start button
    at.run()
    assert not at.exception and not at.error

    deadline = time.monotonic() + 300
    while jobs.active_job() and time.monotonic() < deadline:
        time.sleep(2)
    run = runs_dir() / "apptest-run"
    state = jobs.job_state(run, running=jobs.active_job() is not None)
    assert state.status == "done", (run / jobs.LOG_FILE).read_text()[-3000:]
    assert state.step == 40
    card = read_card(run / "model")
    assert card["training"]["teacher"]["weights_sha256"] == read_card(teacher)["weights_sha256"]

    at = _open(at, PAGES[2])
    options = at.selectbox(key="evaluate_model").options
    assert any("apptest-run" in option for option in options)


def test_a_second_training_is_told_which_run_is_going(app):
    from fer_core.models import preset_config

    running = jobs.start_job(preset_config("seed", steps=100_000, max_train_faces=300), "long-run")
    try:
        at = _open(app, PAGES[1])
        assert "long-run" in at.info[0].value
        at.text_input(key="seed_name").input("second-run")
        at.button[0].click()
        at.run()
        assert "long-run" in at.warning[0].value and "already training" in at.warning[0].value
        assert not (runs_dir() / "second-run").exists()
    finally:
        jobs.stop_job(running.run_dir)
        deadline = time.monotonic() + 120
        while jobs.active_job() and time.monotonic() < deadline:
            time.sleep(1)
