"""Evaluation: accuracy, the report's per-emotion table, precision/recall/F1 and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fer_core.calibrate import expected_calibration_error
from fer_core.emotions import EMOTIONS, NUM_CLASSES


@dataclass(frozen=True)
class Evaluation:
    """Metrics of predictions against true labels; ``confusion`` rows are true, columns predicted."""

    confusion: np.ndarray  # int64 (7, 7)
    ece: float | None = None  # top-1 expected calibration error, when probabilities were given

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / self.n) if self.n else 0.0

    def per_class(self) -> pd.DataFrame:
        """One row per emotion: support (actual), predicted, true positives, recall, precision, F1."""
        true_positives = np.diag(self.confusion)
        support = self.confusion.sum(axis=1)
        predicted = self.confusion.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = np.where(support > 0, true_positives / support, 0.0)
            precision = np.where(predicted > 0, true_positives / predicted, 0.0)
            f1 = np.where(recall + precision > 0, 2 * recall * precision / (recall + precision), 0.0)
        return pd.DataFrame(
            {
                "support": support,
                "predicted": predicted,
                "true_positives": true_positives,
                "recall": recall,
                "precision": precision,
                "f1": f1,
            },
            index=pd.Index(EMOTIONS, name="emotion"),
        )

    def normalized_confusion(self) -> np.ndarray:
        """Rows divided by their totals (each true emotion's rates), float64 (7, 7)."""
        totals = self.confusion.sum(axis=1, keepdims=True)
        return np.divide(self.confusion, totals, out=np.zeros((7, 7)), where=totals > 0)

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON shape: n, accuracy, per_class by emotion name, confusion_matrix."""
        table = self.per_class()
        per_class = {
            name: {
                "support": int(row.support),
                "predicted": int(row.predicted),
                "true_positives": int(row.true_positives),
                "recall": float(row.recall),
                "precision": float(row.precision),
                "f1": float(row.f1),
            }
            for name, row in table.iterrows()
        }
        values = {
            "n": self.n,
            "accuracy": self.accuracy,
            "per_class": per_class,
            "confusion_matrix": self.confusion.tolist(),
        }
        if self.ece is not None:
            values["ece"] = self.ece
        return values


def evaluate(labels: np.ndarray, probabilities: np.ndarray) -> Evaluation:
    """Compare int labels (N,) with predicted probabilities (N, 7) or predicted labels (N,)."""
    labels = np.asarray(labels)
    predictions = np.asarray(probabilities)
    ece = None
    if predictions.ndim == 2:
        if predictions.shape[1] != NUM_CLASSES:
            raise ValueError(f"expected probabilities of shape (N, 7), got {predictions.shape}")
        if len(labels) == len(predictions) and len(labels):
            ece = expected_calibration_error(predictions, labels)
        predictions = predictions.argmax(axis=1)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in length")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"labels must be in 0..6, got values from {labels.min()} to {labels.max()}")
    cells = labels.astype(np.int64) * NUM_CLASSES + predictions.astype(np.int64)
    matrix = np.bincount(cells, minlength=NUM_CLASSES * NUM_CLASSES).reshape(NUM_CLASSES, NUM_CLASSES)
    return Evaluation(confusion=matrix, ece=ece)


def predictions_table(labels: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """One row per face: its index, true and predicted emotion, and the seven probabilities."""
    return pd.DataFrame(
        {
            "index": np.arange(len(labels)),
            "true": [EMOTIONS[i] for i in labels],
            "predicted": [EMOTIONS[i] for i in np.asarray(probabilities).argmax(axis=1)],
        }
    ).join(pd.DataFrame(probabilities, columns=[f"p_{name}" for name in EMOTIONS]))
