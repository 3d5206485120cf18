"""The dashboard's background work under AppTest: the Batch page from a server folder to the results, and
the Train page listing the server's runs and overlaying their curves."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fer_core import jobs
from fer_core.models import preset_config
from fer_core.train import CURVE_FIELDS

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
BATCH, TRAIN = "app_pages/5_batch.py", "app_pages/2_train.py"


def _open(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_the_batch_page_scores_a_server_folder_in_the_background(spark, photo_folder):
    from fer_core.server import upload_dir

    folder = upload_dir() / "apptest-photos"
    shutil.copytree(photo_folder, folder, dirs_exist_ok=True)
    at = _open(BATCH)
    at.radio(key="batch_source").set_value("Folder on the server").run()
    at.text_input(key="batch_folder").input("/etc").run()
    at.button(key="batch_start").click().run()
    assert "not in a data folder" in at.error[0].value and jobs.active_batch() is None

    at.text_input(key="batch_folder").input(str(folder))
    at.text_input(key="batch_name").input("apptest-batch")
    at.button(key="batch_start").click().run()
    assert not at.exception and not at.error, [error.value for error in at.error]
    deadline = time.monotonic() + 600
    while jobs.active_batch() and time.monotonic() < deadline:
        time.sleep(2)
    run_dir = jobs.batch_root() / "apptest-batch"
    state = jobs.job_state(run_dir, running=False)
    assert state.status == "done", (run_dir / jobs.BATCH_LOG).read_text()[-3000:]

    at.run()
    assert not at.exception
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics == {"Photos": "7", "Faces": metrics["Faces"], "No face": "1", "Errors": "2"}
    table = at.dataframe[0].value
    assert int(metrics["Faces"]) == table["face"].notna().sum() >= 7
    # Paths as the visitor knows them, inside the folder they named; not the server's whole path.
    assert {"holiday.png", "people/single_face.jpg", "people/more/truncated.jpg"} <= set(table["path"])
    assert len(at.get("plotly_chart")) == 1 and len(at.get("download_button")) == 2


def _fake_run(root: Path, name: str, steps: int, accuracy: float | None, status: str) -> None:
    """A training run as ``fer_core train`` leaves it: config, curves, progress (and a card when done)."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(preset_config("seed", steps=steps).to_dict()))
    rows = [{"step": step, "minibatch_loss": 1.5 - step / steps, "minibatch_accuracy": step / steps / 2,
             "elapsed_s": step / 10} for step in range(10, steps + 1, 10)]  # fmt: skip
    rows += [{"step": steps, "val_loss": 1.2, "val_accuracy": accuracy or 0.3, "elapsed_s": steps / 10}]
    pd.DataFrame(rows, columns=CURVE_FIELDS).to_csv(run / "curves.csv", index=False)
    done = steps if status == "done" else steps // 2
    (run / "progress.json").write_text(json.dumps({"step": done, "total_steps": steps, "status": status}))
    if accuracy is not None:
        (run / "model").mkdir()
        (run / "model" / "card.json").write_text(
            json.dumps({"metrics": {"PublicTest": {"accuracy": accuracy}}})
        )


@pytest.fixture()
def server_runs(tmp_path, monkeypatch):
    """Two finished runs and a stopped one, in a runs folder of their own."""
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path))
    _fake_run(tmp_path, "first", 100, 0.41, "done")
    _fake_run(tmp_path, "halted", 200, None, "stopped")
    time.sleep(0.05)  # the newest run is told by its files' times
    _fake_run(tmp_path, "second", 60, 0.47, "done")
    return tmp_path


def test_the_servers_runs_are_listed_with_their_accuracy(server_runs):
    runs = jobs.training_runs()
    assert [run.name for run in runs] == ["second", "halted", "first"]
    table = jobs.runs_table(runs)
    assert list(table.columns) == ["run", "preset", "status", "steps", "PublicTest accuracy", "date"]
    assert table["status"].tolist() == ["done", "stopped", "done"]
    assert table["steps"].tolist() == ["60 / 60", "100 / 200", "100 / 100"]
    assert table["PublicTest accuracy"].tolist()[::2] == [0.47, 0.41] and pd.isna(table.iloc[1, 4])
    curves = jobs.run_curves(runs, ["first", "second", "unknown"])
    assert list(curves) == ["first", "second"] and curves["first"]["step"].max() == 100


def test_a_new_session_of_the_train_page_shows_the_servers_runs_and_compares_them(spark, server_runs):
    at = _open(TRAIN)
    assert not any("No training has run" in caption.value for caption in at.caption)
    assert any("second" in item.value and "finished" in item.value for item in at.success)  # the newest
    table = at.dataframe[0].value
    assert table["run"].tolist() == ["second", "halted", "first"]
    compare = at.multiselect(key="compare_runs")
    assert compare.value == ["second", "halted"]
    compare.set_value(["first", "second", "halted"]).run()
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert {trace["legendgroup"] for trace in chart["data"]} == {"first", "second", "halted"}


def test_the_batch_page_alone_draws_the_sidebar(spark):
    at = AppTest.from_file(str(Path(APP).parent / BATCH), default_timeout=240).run()
    assert not at.exception, at.exception
    assert at.sidebar.radio(key="data_source").value == "Shipped sample"
