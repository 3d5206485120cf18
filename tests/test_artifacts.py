"""Saved models: the card, the checks on loading, and the shipped default model."""

from __future__ import annotations

import json
import shutil

import pytest

from fer_core.artifacts import (
    CARD_FILE,
    DEFAULT_MODEL,
    LITE_MODEL,
    MODEL_FILE,
    MODELS_DIR,
    ModelError,
    default_model_path,
    load_model,
    read_card,
    round_weights,
    save_model,
)
from fer_core.data import load_dataset
from fer_core.emotions import EMOTIONS, SPLITS
from fer_core.pipeline import evaluate_model


@pytest.fixture()
def model_copy(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(default_model_path(), target)
    return target


def test_default_model_ships_with_a_complete_card():
    loaded = load_model()
    card = loaded.card
    assert tuple(card["emotions"]) == EMOTIONS
    assert card["preprocessing"]["input_size"] == loaded.model.input_shape[1]
    for split in ("PublicTest", "PrivateTest"):
        metrics = card["metrics"][split]
        assert set(metrics["per_class"]) == set(EMOTIONS)
        assert 0 < metrics["accuracy"] < 1
    assert card["data"]["fingerprint"] and card["weights_sha256"]
    assert {"tensorflow", "keras", "numpy"} <= set(card["versions"])


def test_default_model_folder_keeps_to_its_size_and_precision():
    """Issue "Model v3": the default's folder stays under 20 MB; rounded weights are what the card says."""
    import numpy as np

    assert sum(path.stat().st_size for path in DEFAULT_MODEL.iterdir()) < 20 * 10**6
    loaded = load_model(DEFAULT_MODEL)
    assert loaded.card["weights_precision"]["precision"] == "float16"  # how six networks fit
    for weight in loaded.model.get_weights():
        normal = (np.abs(weight) >= 6.2e-5) & (np.abs(weight) <= 65504)
        assert np.array_equal(weight[normal], weight[normal].astype(np.float16).astype(np.float32))


def test_changed_weights_are_refused(model_copy):
    with open(model_copy / MODEL_FILE, "ab") as stream:
        stream.write(b"tampered")
    with pytest.raises(ModelError, match="sha256"):
        load_model(model_copy)


def test_other_label_order_is_refused(model_copy):
    card = json.loads((model_copy / CARD_FILE).read_text())
    card["emotions"] = list(reversed(EMOTIONS))
    (model_copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="labels"):
        read_card(model_copy)


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(ModelError, match="not a model folder"):
        load_model(tmp_path)


SHIPPED = [folder for folder in (DEFAULT_MODEL, LITE_MODEL) if (folder / CARD_FILE).is_file()]


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda folder: folder.name)
def test_shipped_models_reproduce_their_cards_on_the_full_data(folder, full_csv, spark):
    loaded = load_model(folder)
    dataset = load_dataset(full_csv)
    assert loaded.card["data"]["fingerprint"] == dataset.fingerprint
    for split in SPLITS[1:]:
        report = evaluate_model(loaded, dataset, split)
        assert report.accuracy == pytest.approx(loaded.card["metrics"][split]["accuracy"], abs=1e-6)
        assert report.confusion.tolist() == loaded.card["metrics"][split]["confusion_matrix"]


def test_fast_model_is_lite_where_it_ships_else_the_default(tmp_path, monkeypatch):
    from fer_core import artifacts

    monkeypatch.delenv(artifacts.FAST_MODEL_ENV, raising=False)
    monkeypatch.delenv(artifacts.MODEL_ENV, raising=False)
    monkeypatch.setattr(artifacts, "LITE_MODEL", tmp_path / "lite")
    assert artifacts.fast_model_path() == artifacts.DEFAULT_MODEL  # no lite model: the default
    (tmp_path / "lite").mkdir()
    (tmp_path / "lite" / CARD_FILE).write_text("{}")
    assert artifacts.fast_model_path() == tmp_path / "lite"
    monkeypatch.setenv(artifacts.FAST_MODEL_ENV, str(tmp_path / "other"))
    assert artifacts.fast_model_path() == tmp_path / "other"


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_rounded_weights_load_as_rounded_and_shrink_the_file(tmp_path, precision):
    import ml_dtypes
    import numpy as np

    loaded = load_model(MODELS_DIR / "fast", fast=False)
    model, before = loaded.model, loaded.model.get_weights()
    tiny = next(i for i, weight in enumerate(before) if weight.size > 1)
    before[tiny].flat[0] = 3e-7  # below float16's normal range: float16 rounding must keep it exactly
    model.set_weights(before)
    change = round_weights(model, precision)
    saved = save_model(model, tmp_path / precision, loaded.card)
    after = load_model(saved, fast=False).model.get_weights()
    kind = np.float16 if precision == "float16" else ml_dtypes.bfloat16
    normal = [np.abs(weight) >= 6.2e-5 for weight in before]
    for old, new, inside in zip(before, after, normal, strict=True):
        assert new.dtype == np.float32 and np.array_equal(
            new[inside], new[inside].astype(kind).astype(np.float32)
        )
        assert np.allclose(new, old, rtol=2 ** -(8 if precision == "bfloat16" else 11), atol=0)
    assert (after[tiny].flat[0] == np.float32(3e-7)) == (precision == "float16")
    assert 0 < change == max(float(np.abs(new - old).max()) for old, new in zip(before, after, strict=True))
    assert (saved / MODEL_FILE).stat().st_size < 0.8 * (MODELS_DIR / "fast" / MODEL_FILE).stat().st_size
    with pytest.raises(ValueError, match="precision"):
        round_weights(model, "int4")
