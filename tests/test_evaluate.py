"""Evaluation: confusion matrix orientation, per-emotion table and the JSON shape."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core.emotions import EMOTIONS
from fer_core.evaluate import evaluate


def test_confusion_rows_are_true_columns_predicted():
    labels = np.array([0, 0, 0, 1, 3, 3])
    predicted = np.array([0, 3, 0, 1, 3, 6])
    report = evaluate(labels, predicted)
    assert report.confusion[0, 3] == 1 and report.confusion[3, 0] == 0
    assert report.confusion[3, 6] == 1
    assert report.n == len(labels)
    assert report.accuracy == pytest.approx(np.mean(labels == predicted))


def test_per_class_table_matches_its_definitions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 500)
    probabilities = rng.dirichlet(np.ones(7), 500).astype(np.float32)
    predicted = probabilities.argmax(1)
    table = evaluate(labels, probabilities).per_class()
    for index, name in enumerate(EMOTIONS):
        tp = np.sum((labels == index) & (predicted == index))
        assert table.loc[name, "support"] == np.sum(labels == index)
        assert table.loc[name, "predicted"] == np.sum(predicted == index)
        assert table.loc[name, "true_positives"] == tp
        assert table.loc[name, "recall"] == pytest.approx(tp / np.sum(labels == index))
        assert table.loc[name, "precision"] == pytest.approx(tp / np.sum(predicted == index))


def test_json_shape_and_bad_input():
    report = evaluate(np.array([1, 2]), np.array([1, 1])).to_dict()
    assert set(report) == {"n", "accuracy", "per_class", "confusion_matrix"}
    assert list(report["per_class"]) == list(EMOTIONS)
    assert set(report["per_class"]["disgust"]) == {
        "support",
        "predicted",
        "true_positives",
        "recall",
        "precision",
        "f1",
    }
    assert np.array(report["confusion_matrix"]).shape == (7, 7)
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        evaluate(np.array([1]), np.zeros((1, 5)))
    with pytest.raises(ValueError, match="0..6"):
        evaluate(np.array([9]), np.array([1]))


def test_predictions_table_has_one_row_per_face():
    from fer_core.evaluate import predictions_table

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, 30)
    probabilities = rng.dirichlet(np.ones(7), 30).astype(np.float32)
    table = predictions_table(labels, probabilities)
    assert len(table) == 30
    assert table["true"].tolist() == [EMOTIONS[i] for i in labels]
    assert table["predicted"].tolist() == [EMOTIONS[i] for i in probabilities.argmax(1)]
    assert np.allclose(table[[f"p_{name}" for name in EMOTIONS]].sum(axis=1), 1, atol=1e-5)
