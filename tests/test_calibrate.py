"""Calibrated confidence: temperature fitting, calibration error, the uncertain threshold, CLI fields."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_core.calibrate import (
    Calibration,
    apply_temperature,
    expected_calibration_error,
    fit_calibration,
    fit_temperature,
    fit_uncertain_threshold,
    reliability_table,
)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def overconfident():
    """Labels drawn from softmax(logits), and a model that reports softmax(3 x logits): too sure by 3x."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, (20_000, 7))
    truth = softmax(logits)
    labels = np.array([rng.choice(7, p=row) for row in truth])
    return softmax(3 * logits), labels


def test_the_fitted_temperature_undoes_overconfidence(overconfident):
    probabilities, labels = overconfident
    temperature = fit_temperature(probabilities, labels)
    assert temperature == pytest.approx(3.0, rel=0.08)
    before = expected_calibration_error(probabilities, labels)
    after = expected_calibration_error(apply_temperature(probabilities, temperature), labels)
    assert before > 0.1 and after < 0.02


def test_temperature_never_changes_the_winner(overconfident):
    probabilities, _ = overconfident
    scaled = apply_temperature(probabilities, 2.5)
    assert np.array_equal(scaled.argmax(axis=1), probabilities.argmax(axis=1))
    assert np.allclose(scaled.sum(axis=1), 1, atol=1e-5) and scaled.dtype == np.float32
    with pytest.raises(ValueError, match="temperature must be positive"):
        apply_temperature(probabilities, 0)


def test_ece_by_hand():
    # Two faces at 0.9 confidence, one right (bin accuracy 0.5); two at 0.6, both right.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    # |0.9 - 0.5| * 2/4 + |0.6 - 1.0| * 2/4
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.4)
    table = reliability_table(probabilities, labels, bins=10)
    assert table.faces.sum() == 4 and len(table) == 10
    assert table.loc[table.faces > 0, "accuracy"].tolist() == [1.0, 0.5]


def _top(confidence: np.ndarray) -> np.ndarray:
    """Probabilities whose top-1 is emotion 0 with the given confidence."""
    rest = (1 - confidence) / 6
    return np.column_stack([confidence, *[rest] * 6])


def test_uncertain_threshold_is_where_predictions_become_more_likely_right_than_wrong():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.15, 1.0, 20_000)
    correct = rng.random(20_000) < confidence  # a calibrated model: right as often as it says
    threshold = fit_uncertain_threshold(_top(confidence), np.where(correct, 0, 1))
    assert threshold == pytest.approx(0.5, abs=0.04)
    # A model right on every face is never a coin flip: nothing is uncertain.
    assert fit_uncertain_threshold(_top(confidence), np.zeros(20_000, int)) == 0.0


def test_calibration_round_trips_and_defaults_to_nothing(overconfident):
    probabilities, labels = overconfident
    calibration, fitted = fit_calibration(probabilities, labels)
    assert fitted["ece_after"] < fitted["ece_before"]
    assert 0 < calibration.uncertain_below < 1
    restored = Calibration.from_dict(calibration.to_dict())
    assert restored.temperature == pytest.approx(calibration.temperature, abs=1e-4)
    assert restored.uncertain_below == pytest.approx(calibration.uncertain_below, abs=1e-4)
    assert np.array_equal(Calibration.from_dict(None).apply(probabilities), probabilities.astype(np.float32))


def test_cli_reports_calibration_and_uncertain_faces(photos, tmp_path):
    import subprocess
    import sys

    from fer_core.artifacts import load_model

    evaluated = subprocess.run(
        [sys.executable, "-m", "fer_core", "evaluate", "--split", "PublicTest", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(evaluated.stdout)
    calibration = report["calibration"]
    card = load_model().card["calibration"]
    assert calibration["temperature"] == pytest.approx(card["temperature"])
    assert 0 <= calibration["ece"] < 0.2 and calibration["ece"] == pytest.approx(report["ece"])

    predicted = subprocess.run(
        [sys.executable, "-m", "fer_core", "predict", "--json", str(photos / "multi_face.jpg")],
        capture_output=True,
        text=True,
        check=True,
    )
    (result,) = json.loads(predicted.stdout)
    for face in result["faces"]:
        assert face["confidence"] == pytest.approx(max(face["probabilities"].values()))
        assert face["uncertain"] == (face["confidence"] < card["uncertain_below"])


def test_uncertain_flag_follows_the_cards_threshold(photos):
    from fer_core.artifacts import load_model
    from fer_core.predict import analyze_image

    model = load_model()
    strict = model.replace(card={**model.card, "calibration": {"temperature": 1.0, "uncertain_below": 1.01}})
    lenient = model.replace(card={**model.card, "calibration": {"temperature": 1.0, "uncertain_below": 0.0}})
    assert all(face.uncertain for face in analyze_image(photos / "multi_face.jpg", strict).faces)
    assert not any(face.uncertain for face in analyze_image(photos / "multi_face.jpg", lenient).faces)
