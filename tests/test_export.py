"""The fast path: ONNX exports checked against Keras, loaded and used for prediction, refused when damaged."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest

from fer_core.artifacts import CARD_FILE, MODELS_DIR, ModelError, load_model, read_card
from fer_core.batch import model_files
from fer_core.cli import main
from fer_core.data import load_dataset
from fer_core.export import ONNX_FILE, TOLERANCE, OnnxModel, export_onnx, max_difference
from fer_core.models import build_ensemble, build_model, preset_config
from fer_core.predict import predict_faces, run_model, tta_views
from fer_core.preprocess import resize_faces


@pytest.fixture(scope="module")
def sample_faces(sample_csv) -> np.ndarray:
    return load_dataset(sample_csv).splits["PrivateTest"].images


@pytest.fixture()
def exported_fast(tmp_path, sample_csv):
    """A copy of the shipped fast model given an export by the CLI, checked on the sample."""
    folder = tmp_path / "fast"
    shutil.copytree(MODELS_DIR / "fast", folder)
    (folder / ONNX_FILE).unlink(missing_ok=True)
    card = json.loads((folder / CARD_FILE).read_text())
    card.pop("export", None)
    (folder / CARD_FILE).write_text(json.dumps(card))
    assert main(["export", str(folder), "--data", str(sample_csv)]) == 0
    return folder


def test_an_augmenting_model_exports_without_its_random_layers(tmp_path, sample_faces):
    config = preset_config("fast", filters=(8, 16, 16), hidden_units=16, augment="full")
    model = build_model(config)
    path = export_onnx(model, tmp_path / ONNX_FILE)
    operations = {node.op_type for node in onnx.load(path).graph.node}
    assert "Conv" in operations
    assert not {op for op in operations if "Random" in op}, operations
    inputs = resize_faces(sample_faces, config.input_size).astype(np.float32)
    exported = OnnxModel(path)
    outputs = exported(inputs)
    assert outputs.shape == (len(inputs), 7)
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, atol=1e-5)
    assert max_difference(model, exported, inputs) <= TOLERANCE


def test_an_ensemble_exports_as_one_graph_of_its_members(tmp_path, sample_faces):
    config = preset_config("fast", filters=(8, 16, 16), hidden_units=16)
    members = [build_model(config) for _ in range(2)]  # two random initialisations
    ensemble = build_ensemble(members)
    exported = OnnxModel(export_onnx(ensemble, tmp_path / ONNX_FILE))
    inputs = resize_faces(sample_faces, config.input_size).astype(np.float32)
    assert max_difference(ensemble, exported, inputs) <= TOLERANCE
    np.testing.assert_allclose(
        exported(inputs), np.mean([run_model(member, inputs) for member in members], axis=0), atol=TOLERANCE
    )


def test_cli_export_records_the_check_and_prediction_takes_the_fast_path(exported_fast, sample_faces):
    entry = read_card(exported_fast)["export"]["onnx"]
    assert entry["file"] == ONNX_FILE and 0 <= entry["max_abs_difference"] <= TOLERANCE
    assert "onnx" in (exported_fast / "README.md").read_text().lower()
    fast, keras_only = load_model(exported_fast), load_model(exported_fast, fast=False)
    assert isinstance(fast.predictor, OnnxModel) and keras_only.predictor is keras_only.model
    for tta in ("none", "crops"):
        np.testing.assert_allclose(
            predict_faces(fast, sample_faces, tta=tta),
            predict_faces(keras_only, sample_faces, tta=tta),
            atol=TOLERANCE,
        )


def test_a_changed_or_missing_export_is_refused(exported_fast):
    with open(exported_fast / ONNX_FILE, "ab") as stream:
        stream.write(b"tampered")
    with pytest.raises(ModelError, match="sha256"):
        load_model(exported_fast)
    (exported_fast / ONNX_FILE).unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model(exported_fast)
    assert load_model(exported_fast, fast=False).fast is None  # the Keras model alone still loads


def test_the_export_travels_to_spark_workers(exported_fast):
    assert ONNX_FILE in model_files(exported_fast)


@pytest.mark.parametrize("name", sorted(path.parent.name for path in MODELS_DIR.glob(f"*/{ONNX_FILE}")))
def test_every_shipped_export_agrees_with_keras(name, sample_faces):
    """Each shipped ONNX file against its Keras model, on real faces and their TTA views."""
    loaded = load_model(MODELS_DIR / name)
    assert loaded.fast is not None
    inputs = np.concatenate(tta_views(resize_faces(sample_faces, loaded.input_size), "crops")).astype(
        np.float32
    )
    difference = np.abs(run_model(loaded.fast, inputs) - run_model(loaded.model, inputs)).max()
    assert difference <= TOLERANCE


def test_a_folder_with_an_export_predicts_without_importing_tensorflow(exported_fast, sample_csv):
    """TensorFlow's import takes seconds: the CLI's `predict` on an exported model never pays it, and the
    Keras network still loads, the same one, when a caller asks for it (Grad-CAM, refitting)."""
    script = (
        "import sys, numpy as np\n"
        "from fer_core.artifacts import load_model\n"
        "from fer_core.data import load_dataset\n"
        "from fer_core.predict import predict_faces\n"
        f"loaded = load_model({str(exported_fast)!r})\n"
        f"faces = load_dataset({str(sample_csv)!r}).splits['PrivateTest'].images\n"
        "fast = predict_faces(loaded, faces)\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
        "slow = predict_faces(loaded.replace(fast=None), faces)\n"
        "print('tensorflow' in sys.modules, float(np.abs(fast - slow).max()))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    before, after = run.stdout.split("\n")[-3:-1]
    assert before == "False False"
    imported, difference = after.split()
    assert imported == "True" and float(difference) <= TOLERANCE
