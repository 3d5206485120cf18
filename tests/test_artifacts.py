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
    ModelError,
    default_model_path,
    load_model,
    read_card,
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
