"""Reliability: broken inputs built here (photos, model folders, uploads, options), faults (SIGKILL,
a full disk, a lost Spark worker), load (predictions while a training runs), and a deployable server."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from fer_core import server
from fer_core.artifacts import (
    CARD_FILE,
    DEFAULT_MODEL,
    MODEL_FILE,
    ModelError,
    load_model,
    read_card,
    runs_dir,
    save_model,
)
from fer_core.launch import free_port
from fer_core.predict import MAX_IMAGE_BYTES, read_image

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
PREDICT_PAGE, EVALUATE_PAGE, DATASET_PAGE = (
    "app_pages/4_predict.py",
    "app_pages/3_evaluate.py",
    "app_pages/1_dataset.py",
)
# A tiny run of the seed network at 48 x 48 with no offline copies: no Spark preprocessing stage.
TINY_RUN = ["--preset", "seed", "--input-size", "48", "--no-flip", "--rotation", "0",
            "--oversample-disgust", "1", "--max-train-faces", "300", "--batch-size", "16"]  # fmt: skip


def error_lines(completed: subprocess.CompletedProcess) -> list[str]:
    """The CLI's ``error:`` lines (TensorFlow may log its own lines on stderr too), with no traceback."""
    assert "Traceback" not in completed.stderr, completed.stderr[-3000:]
    return [line for line in completed.stderr.splitlines() if line.startswith("error:")]


def fer(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fer_core", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "FER_SPARK_MASTER": "local[2]", **(env or {})},
        timeout=timeout,
        cwd=ROOT,
    )


# --- 6. 16-bit and float photos ------------------------------------------------------------------


def test_16_bit_png_and_float_tiff_keep_their_contrast(photos, tmp_path):
    import cv2
    from PIL import Image

    gray = cv2.imread(str(photos / "single_face.jpg"), cv2.IMREAD_GRAYSCALE)
    color = cv2.imread(str(photos / "single_face.jpg"), cv2.IMREAD_COLOR)
    cv2.imwrite(str(tmp_path / "gray16.png"), gray.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "color16.png"), color.astype(np.uint16) * 257)
    Image.fromarray(gray.astype(np.float32) / 255).save(tmp_path / "float.tif")
    Image.fromarray(gray.astype(np.float32) * 4 - 100).save(tmp_path / "float-wide.tif")  # -100..920
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I;16")

    for name in ("gray16.png", "float.tif"):
        image = read_image(tmp_path / name)
        assert image.dtype == np.uint8 and image.shape == (*gray.shape, 3), name
        assert np.abs(image[..., 0].astype(int) - gray).max() <= 1, name
    wide = read_image(tmp_path / "float-wide.tif")[..., 0]
    assert wide.min() == 0 and wide.max() == 255  # stretched from its own range, not clipped white
    assert np.corrcoef(wide.ravel(), gray.ravel())[0, 1] > 0.99
    color_image = read_image(tmp_path / "color16.png")
    assert np.abs(color_image.astype(int) - color[..., ::-1]).max() <= 1


# --- 7. damaged model folders ---------------------------------------------------------------------


def _damaged_cards() -> dict[str, object]:
    card = json.loads((DEFAULT_MODEL / CARD_FILE).read_text())
    missing = {key: value for key, value in card.items() if key != "preprocessing"}
    wrong_types = {**card, "training": {**card["training"], "steps": "many"}, "metrics": []}
    bad_config = {**card, "config": {**card["config"], "optimizer": "sgdd"}}
    return {
        "a list": [card],
        "a missing key": missing,
        "wrong types": wrong_types,
        "bad settings": bad_config,
    }


def _model_folder(folder: Path, card, weights: bytes = b"PK\x05\x06" + bytes(18)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).write_bytes(weights)
    (folder / CARD_FILE).write_text(json.dumps(card))
    return folder


@pytest.mark.parametrize("kind", list(_damaged_cards()))
def test_a_damaged_card_is_refused_with_a_model_error(tmp_path, kind):
    folder = _model_folder(tmp_path / "model", _damaged_cards()[kind])
    with pytest.raises(ModelError, match="is damaged"):
        read_card(folder)
    with pytest.raises(ModelError, match="is damaged"):
        load_model(folder)


def test_the_cli_names_a_damaged_model_in_one_line(tmp_path, photos):
    folder = _model_folder(tmp_path / "model", _damaged_cards()["a list"])
    completed = fer("predict", "--model", folder, photos / "single_face.jpg")
    assert completed.returncode == 2
    assert error_lines(completed) == [
        f"error: {folder / CARD_FILE} is damaged: the card is a JSON list, not an object"
    ]


@pytest.fixture()
def damaged_run():
    """A damaged model folder under runs/, where the dashboard's model pickers look."""
    folder = _model_folder(runs_dir() / "broken-run" / "model", _damaged_cards()["a missing key"])
    yield folder
    shutil.rmtree(folder.parent)


def test_a_damaged_model_is_listed_as_damaged_and_breaks_no_page(spark, damaged_run):
    at = AppTest.from_file(APP, default_timeout=240).run()
    assert not at.exception
    at.switch_page(PREDICT_PAGE).run()
    assert not at.exception, at.exception
    picker = at.selectbox(key="predict_model")
    assert "broken-run (damaged)" in picker.options
    assert picker.value == str(DEFAULT_MODEL)  # the default stays the first choice
    picker.set_value(str(damaged_run)).run()
    assert not at.exception, at.exception
    assert "This model cannot be used" in at.error[0].value and "is damaged" in at.error[0].value
    at.switch_page(EVALUATE_PAGE).run()  # the choice is shared: Evaluate opens on the damaged model
    assert not at.exception, at.exception
    assert any("is damaged" in error.value for error in at.error)


# --- 8. messages that mislead ---------------------------------------------------------------------


def test_random_bytes_for_weights_are_called_damaged_not_missing(tmp_path):
    card = json.loads((DEFAULT_MODEL / CARD_FILE).read_text())
    weights = random.Random(0).randbytes(4096)
    card["weights_sha256"] = hashlib.sha256(weights).hexdigest()  # the card agrees: only Keras can tell
    folder = _model_folder(tmp_path / "model", card, weights)
    with pytest.raises(ModelError) as raised:
        load_model(folder)
    assert "is damaged" in str(raised.value) and "not found" not in str(raised.value).lower()


def test_train_checks_init_from_before_reading_the_data(tmp_path):
    cache = tmp_path / "cache"
    completed = fer("train", "--out", tmp_path / "run", "--init-from", tmp_path / "missing", *TINY_RUN,
                    env={"FER_CACHE_DIR": str(cache)})  # fmt: skip
    assert completed.returncode == 2
    assert error_lines(completed) == [
        f"error: {tmp_path / 'missing'} is not a model folder: it needs {MODEL_FILE} and {CARD_FILE}"
    ]
    assert not cache.exists()  # Spark never read the data


def test_a_bad_uploaded_csv_is_named_with_its_problem(spark):
    at = AppTest.from_file(APP, default_timeout=240).run()
    at.sidebar.radio(key="data_source").set_value("Upload a CSV").run()
    content = b"emotion,pixels,Usage\n" + b"3,\xff\xfe\x00\x81 12 7,Training\n" * 40  # not UTF-8 text
    at.file_uploader(key="data_upload").upload("my-faces.csv", content, "text/csv").run()
    at.switch_page(DATASET_PAGE).run()
    assert not at.exception, at.exception
    message = at.error[0].value
    assert "my-faces.csv" in message
    assert "Python worker" not in message and str(server.upload_dir()) not in message
    stored = list(server.upload_dir().glob("*.csv"))
    assert [path.read_bytes() for path in stored] == [content]
    assert stored[0].name == hashlib.sha256(content).hexdigest()[:32] + ".csv"  # the server's name


# --- 9. a bad option ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "problem"),
    [(["train", "--out", "x", "--stepz", "3"], "unrecognized arguments: --stepz 3"),
     (["evaluate", "--split", "Test"], "argument --split: invalid choice: 'Test'"),
     (["train", "--out", "x", "--steps", "many"], "argument --steps: invalid int value: 'many'")],
)  # fmt: skip
def test_a_bad_option_prints_one_error_line_and_points_at_help(args, problem):
    completed = fer(*args)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and problem in lines[0]
    assert f"python -m fer_core {args[0]} --help" in lines[0] and "usage:" not in completed.stderr


# --- uploads of the full data set -----------------------------------------------------------------


class _RecordingStream(io.BytesIO):
    def __init__(self, content: bytes) -> None:
        super().__init__(content)
        self.reads: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(size if size is not None else -1)
        return super().read(size)


def test_uploads_of_the_full_data_set_size_are_allowed_and_streamed_to_disk(tmp_path, monkeypatch):
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] >= 300  # MB: the Kaggle CSV is 290 MB
    assert MAX_IMAGE_BYTES == 25 * 2**20  # photos keep their own limit, checked when read
    with pytest.raises(ValueError, match="larger than 25 MB"):
        read_image(b"\x89PNG" + bytes(MAX_IMAGE_BYTES))

    monkeypatch.setenv(server.UPLOAD_DIR_ENV, str(tmp_path / "uploads"))
    content = random.Random(1).randbytes(3 * server.CHUNK_BYTES + 12345)
    stream = _RecordingStream(content)
    stored = server.save_upload(stream, "../../etc/fer2013.csv.gz")
    assert stored.parent == tmp_path / "uploads" and stored.read_bytes() == content
    assert stored.name == hashlib.sha256(content).hexdigest()[:32] + ".csv.gz"
    assert stream.reads and all(0 < size <= server.CHUNK_BYTES for size in stream.reads)

    old = tmp_path / "uploads" / ("0" * 32 + ".csv")
    old.write_bytes(b"emotion,pixels\n")
    unfinished = tmp_path / "uploads" / ".tmp-1-2.csv"
    unfinished.write_bytes(b"half")
    day_ago = time.time() - 25 * 3600
    for path in (old, unfinished, stored):
        os.utime(path, (day_ago, day_ago))
    again = server.save_upload(io.BytesIO(content), "again.csv.gz")  # the same bytes: the same file
    assert again == stored and stored.exists()
    assert not old.exists() and not unfinished.exists()
    assert sorted(path.name for path in (tmp_path / "uploads").iterdir()) == [stored.name]


# --- a deployable server: allow-lists --------------------------------------------------------------


def test_data_paths_outside_the_allowed_folders_are_refused(tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "faces.csv").write_text("emotion,pixels\n")
    (allowed / "escape").symlink_to("/etc")
    monkeypatch.setenv(server.DATA_ROOTS_ENV, str(allowed))
    assert server.allowed_data_path(str(allowed / "faces.csv")) == allowed / "faces.csv"
    assert server.allowed_data_path("faces.csv") == allowed / "faces.csv"  # looked up in the roots
    from fer_core.data import SAMPLE_PATH

    assert server.allowed_data_path(str(SAMPLE_PATH)) == SAMPLE_PATH  # always allowed
    for typed in ("/etc/passwd", "../../../etc/passwd", str(allowed / "escape" / "passwd"), "~/.ssh/id_rsa"):
        with pytest.raises(server.AccessError) as refused:
            server.allowed_data_path(typed)
        assert str(allowed) in str(refused.value) and "/etc/" not in str(refused.value).replace(typed, "")


def test_spark_masters_come_from_the_allow_list(monkeypatch):
    monkeypatch.delenv(server.MASTERS_ENV, raising=False)
    assert server.allowed_master("local[2]") == "local[2]"
    assert server.allowed_master("") == os.environ["FER_SPARK_MASTER"]
    for master in ("spark://203.0.113.9:7077", "yarn", "k8s://https://example.org"):
        with pytest.raises(server.AccessError, match="not allowed"):
            server.allowed_master(master)
    monkeypatch.setenv(server.MASTERS_ENV, "spark://10.0.0.5:7077, local[2]")
    assert server.allowed_master("spark://10.0.0.5:7077") == "spark://10.0.0.5:7077"
    with pytest.raises(server.AccessError, match="spark://10.0.0.5:7077"):
        server.allowed_master("local[*]")  # a configured list replaces the local default


def test_messages_for_visitors_hide_server_paths_outside_the_roots(tmp_path):
    upload = server.upload_dir() / "0123abcd.csv"
    message = (
        f'no usable face in {upload}: 3 not UTF-8 text; File "/usr/lib/python3/dist-packages/x.py", '
        "line 3; Path does not exist: file:/srv/secret/fer.csv on spark://127.0.0.1:7077"
    )
    public = server.public_message(message, {str(upload): "mine.csv"})
    assert public == (
        'no usable face in mine.csv: 3 not UTF-8 text; File "x.py", line 3; '
        "Path does not exist: file:fer.csv on spark://127.0.0.1:7077"
    )


def test_the_sidebar_refuses_a_path_and_a_master_outside_the_allow_lists(spark):
    at = AppTest.from_file(APP, default_timeout=240).run()
    at.sidebar.radio(key="data_source").set_value("Path on the server").run()
    at.sidebar.text_input(key="data_path").input("/etc/passwd").run()
    at.sidebar.text_input(key="spark_master").input("spark://203.0.113.9:7077").run()
    assert not at.exception, at.exception
    errors = " ".join(error.value for error in at.error)
    assert "not in a data folder this server allows" in errors and "is not allowed on this server" in errors
    choice = at.session_state["data_choice"]
    assert choice.path is None and choice.spark_master == os.environ["FER_SPARK_MASTER"]


# --- faults: SIGKILL during training, a full disk, a lost Spark worker --------------------------------


def _progress_step(run: Path) -> int:
    try:
        return json.loads((run / "progress.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return 0


def _checkpoint_epoch(run: Path) -> int:
    """The epoch of the run's checkpoint, after checking that its weights file is whole."""
    import h5py

    backup = run / "backup"
    if not (backup / "latest.weights.h5").exists():
        return 0
    with h5py.File(backup / "latest.weights.h5", "r") as weights:
        assert len(weights.keys()) > 0
    metadata = backup / "training_metadata.json"  # written just after the weights
    return json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0


def _start_training(run: Path, steps: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fer_core", "train", "--out", str(run), "--steps", str(steps),
         "--eval-every", "30", *TINY_RUN],
        env={**os.environ, "FER_SPARK_MASTER": "local[2]", **env}, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # killed as a group: the process, its Spark JVM and workers
    )  # fmt: skip


def _kill_when(process: subprocess.Popen, ready, seconds: float = 300, pause: float = 0.005) -> bool:
    """SIGKILL the process group as soon as ``ready()``; False if the process ended first."""
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
            return True
        time.sleep(pause)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError("training never reached the moment to kill it")
    return False


def test_training_killed_at_random_moments_resumes_to_the_same_step_count(tmp_path):
    run, steps, env = tmp_path / "run", 300, {"FER_CACHE_DIR": str(tmp_path / "cache")}
    rng = random.Random(12)
    # 1. during a step: a random moment once the training has begun.
    process = _start_training(run, steps, env)
    started = [None]

    def mid_step() -> bool:
        if _progress_step(run) > 0 and started[0] is None:
            started[0] = time.monotonic() + rng.uniform(0.0, 1.0)
        return started[0] is not None and time.monotonic() >= started[0]

    assert _kill_when(process, mid_step)
    kept = _checkpoint_epoch(run)
    # 2. during a checkpoint write: the moment the new weights file is being written.
    process = _start_training(run, steps, env)
    writing = run / "backup" / ".tmp-latest.weights.h5"
    assert _kill_when(process, writing.exists, pause=0)  # a write takes milliseconds: poll without pause
    assert _checkpoint_epoch(run) >= kept  # the previous checkpoint survived the interrupted write
    kept = _checkpoint_epoch(run)
    # 3. once more at a random step, then run to the end.
    process = _start_training(run, steps, env)
    target = min(_progress_step(run) + rng.randint(20, 120), steps - 10)
    _kill_when(process, lambda: _progress_step(run) >= target)
    assert _checkpoint_epoch(run) >= kept
    process = _start_training(run, steps, env)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1])["steps"] == steps
    assert read_card(run / "model")["training"]["steps"] == steps
    assert not (run / "backup").exists()  # a finished run's checkpoint is removed once its model is saved
    import pandas as pd

    assert pd.read_csv(run / "curves.csv")["step"].max() == steps


def test_checkpoints_are_renamed_into_place_once_written(spark, sample_csv, tmp_path):
    from fer_core.data import load_dataset
    from fer_core.models import preset_config
    from fer_core.preprocess import prepare
    from fer_core.train import train

    config = preset_config("seed", input_size=48, flip=False, rotation=0.0, oversample_disgust=1,
                           steps=20, eval_every=10, max_train_faces=200, keep_best=True)  # fmt: skip
    run = tmp_path / "run"
    result = train(config, prepare(load_dataset(sample_csv), config.preprocess), run, keep_checkpoint=True)
    assert result.steps_done == 20
    files = sorted(path.relative_to(run).as_posix() for path in run.rglob("*") if path.is_file())
    assert files == ["backup/latest.weights.h5", "backup/training_metadata.json", "best.weights.h5",
                     "config.json", "curves.csv"]  # fmt: skip
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 2


@pytest.fixture(scope="module")
def tiny_model():
    """A seed network (28 x 28) and a card for it: quick to save and load."""
    from fer_core.config import TrainConfig
    from fer_core.models import build_model

    config = TrainConfig(steps=10)
    card = json.loads((DEFAULT_MODEL / CARD_FILE).read_text())
    card.pop("calibration", None)
    card.update(name="tiny", preset="seed", config=config.to_dict())
    card["preprocessing"] = {
        **card["preprocessing"],
        "input_size": 28,
        "normalization": "report",
        "tta": "none",
    }
    return build_model(config), card


def test_a_saved_model_is_deflated_and_loads_the_same_weights(tmp_path, tiny_model):
    network, card = tiny_model
    folder = save_model(network, tmp_path / "model", card)
    with zipfile.ZipFile(folder / MODEL_FILE) as stored:
        assert {entry.compress_type for entry in stored.infolist()} == {zipfile.ZIP_DEFLATED}
    for saved, loaded in zip(network.get_weights(), load_model(folder).model.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, loaded)


def _disk_full(real_write, after_bytes: int):
    """A write that stores ``after_bytes`` of its content, then fails as a full disk does."""

    def write(target, content, *args, **kwargs):
        real_write(target, content[:after_bytes], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    return write


@pytest.mark.parametrize("full_during", ["weights", "card"])
def test_a_full_disk_while_saving_a_model_leaves_the_previous_one_intact(tmp_path, tiny_model, full_during):
    import keras

    network, card = tiny_model
    folder = save_model(network, tmp_path / "model", card)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    changed = keras.models.clone_model(network)
    changed.set_weights([weights + 1 for weights in network.get_weights()])

    with pytest.MonkeyPatch.context() as patch:
        if full_during == "weights":
            real_save = keras.Model.save

            def save_until_full(model, filepath, *args, **kwargs):
                real_save(model, filepath, *args, **kwargs)
                content = Path(filepath).read_bytes()
                _disk_full(Path.write_bytes, len(content) // 2)(Path(filepath), content)

            patch.setattr(keras.Model, "save", save_until_full)
        else:
            patch.setattr(Path, "write_text", _disk_full(Path.write_text, 100))
        with pytest.raises(OSError) as raised:
            save_model(changed, folder, {**card, "name": "changed"})
    assert raised.value.errno == errno.ENOSPC
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before  # no temporary left
    assert load_model(folder).card["name"] == "tiny"

    save_model(changed, folder, {**card, "name": "changed"})  # with room again, it is replaced whole
    loaded = load_model(folder)
    assert loaded.card["name"] == "changed"
    np.testing.assert_array_equal(loaded.model.get_weights()[0], changed.get_weights()[0])


def test_a_full_disk_while_writing_a_cache_leaves_the_previous_one_intact(spark, sample_csv, monkeypatch):
    from pyspark.sql import DataFrameWriter

    from fer_core.data import load_dataset
    from fer_core.preprocess import PreprocessConfig, prepare

    dataset = load_dataset(sample_csv)
    config = PreprocessConfig(size=28, flip=True)
    first = prepare(dataset, config)
    real_parquet = DataFrameWriter.parquet

    def parquet_until_full(self, path, *args, **kwargs):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "part-00000.parquet").write_bytes(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(DataFrameWriter, "parquet", parquet_until_full)
    with pytest.raises(OSError, match="No space left"):
        prepare(dataset, config, use_cache=False)
    monkeypatch.setattr(DataFrameWriter, "parquet", real_parquet)
    kept = prepare(dataset, config)  # the cache hit reads the file written before
    for split, faces in first.splits.items():
        assert np.array_equal(kept.splits[split].images, faces.images)
    again = prepare(dataset, config, use_cache=False)  # the half-written temporary does not block
    assert np.array_equal(again.splits["Training"].labels, first.splits["Training"].labels)


def _alive_workers(web_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/json", timeout=2) as response:
            return int(json.loads(response.read())["aliveworkers"])
    except (OSError, ValueError, KeyError):
        return 0


def _stats(master: str, data: Path, cache: Path, env: dict, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fer_core", "stats", "--json", "--data", str(data), "--spark-master", master],
        env={**env, "FER_CACHE_DIR": str(cache)}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, **popen,
    )  # fmt: skip


def test_a_spark_worker_lost_mid_job_is_retried_with_the_same_result(tmp_path, sample_csv):
    import pyspark

    home = Path(pyspark.__file__).resolve().parent
    env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable}
    spark_class = str(home / "bin" / "spark-class")
    port, web_port = free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    log = open(tmp_path / "cluster.log", "w")  # noqa: SIM115 (closed in finally)
    processes, workers = [], []
    try:
        processes.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(web_port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        ))  # fmt: skip
        for number in range(2):
            work = tmp_path / f"worker-{number}"
            work.mkdir()
            worker = subprocess.Popen(
                [spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
                 "--cores", "1", "--memory", "1g", "--work-dir", str(work),
                 "--webui-port", str(free_port())],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,  # with its executors
            )  # fmt: skip
            processes.append(worker)
            workers.append((worker, work))
        deadline = time.monotonic() + 120
        while _alive_workers(web_port) < 2:
            assert time.monotonic() < deadline, (tmp_path / "cluster.log").read_text()[-3000:]
            time.sleep(0.5)

        job = _stats(master_url, sample_csv, tmp_path / "cache-cluster", env)

        def running_task(work: Path) -> bool:
            logs = work.glob("app-*/*/stderr")  # the executor's log, at INFO level
            return any("Running task" in path.read_text(errors="replace") for path in logs)

        deadline, victim = time.monotonic() + 240, None
        while victim is None and job.poll() is None and time.monotonic() < deadline:
            victim = next((worker for worker, work in workers if running_task(work)), None)
            time.sleep(0.05)
        assert victim is not None, "no task ran on a worker"
        os.killpg(victim.pid, signal.SIGKILL)  # the worker and its executor, mid-job
        victim.wait(timeout=30)
        stdout, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, stderr[-3000:]
        assert "Lost executor" in stderr  # the driver saw the loss during the job (logged at ERROR)
        assert _alive_workers(web_port) == 1

        local = _stats("local[2]", sample_csv, tmp_path / "cache-local", env)
        local_stdout, local_stderr = local.communicate(timeout=300)
        assert local.returncode == 0, local_stderr[-3000:]
        on_cluster, on_local = json.loads(stdout), json.loads(local_stdout)
        assert on_cluster["rows"] == on_local["rows"] and on_cluster["rejected"] == on_local["rejected"]
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        log.close()


# --- load: two sessions predicting while a third trains -------------------------------------------------


def test_two_sessions_predict_while_a_third_trains(tmp_path, photos):
    from fer_core.predict import analyze_image

    loaded = load_model()
    sessions = {"session-1": "single_face.jpg", "session-2": "multi_face.jpg"}
    contents = {name: (photos / name).read_bytes() for name in sessions.values()}
    expected = {name: analyze_image(content, loaded, name=name) for name, content in contents.items()}
    assert [len(result.faces) for result in expected.values()] == [1, 5]

    run, rounds = tmp_path / "run", 6
    training = _start_training(run, 300, {"FER_CACHE_DIR": str(tmp_path / "cache")})
    answers: dict[str, list] = {session: [] for session in sessions}
    failures: list[BaseException] = []

    def session(name: str, photo: str) -> None:
        try:
            for _ in range(rounds):
                started = time.perf_counter()
                result = analyze_image(contents[photo], loaded, name=f"{name}/{photo}")
                answers[name].append((result, time.perf_counter() - started))
        except BaseException as error:  # noqa: BLE001 (reported by the main thread)
            failures.append(error)

    try:
        deadline = time.monotonic() + 300
        while _progress_step(run) == 0 and training.poll() is None:
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        threads = [threading.Thread(target=session, args=item) for item in sessions.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert not failures, failures
        for name, photo in sessions.items():
            assert len(answers[name]) == rounds  # every prediction answered
            for result, _ in answers[name]:
                assert result.name == f"{name}/{photo}" and result.error is None
                assert [face.box for face in result.faces] == [face.box for face in expected[photo].faces]
                for face, reference in zip(result.faces, expected[photo].faces, strict=True):
                    np.testing.assert_allclose(face.probabilities, reference.probabilities, atol=1e-4)
        stdout, stderr = training.communicate(timeout=600)
        assert training.returncode == 0, stderr[-3000:]
        assert json.loads(stdout.strip().splitlines()[-1])["steps"] == 300
    finally:
        if training.poll() is None:
            os.killpg(training.pid, signal.SIGKILL)
    seconds = sorted(latency for answered in answers.values() for _, latency in answered)
    print(f"\nphoto latency under load ({len(seconds)} predictions, 2 sessions, 1 training): "
          f"median {np.median(seconds):.2f} s, max {seconds[-1]:.2f} s")  # fmt: skip
