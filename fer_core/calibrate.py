"""Calibrated confidence: temperature scaling fitted on PublicTest, its error measure, the uncertain flag.

A network trained with label smoothing and averaged over test-time views is not calibrated: its top
probability says little about how often it is right. Temperature scaling (Guo et al., 2017) divides
the log-probabilities by one number fitted on held-out faces; it never changes which emotion wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ECE_BINS = 15
# Temperatures searched, on a log scale: far beyond what a trained network needs either way.
_LOG_TEMPERATURES = np.linspace(np.log(0.05), np.log(20.0), 801)


def _check(probabilities: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.ndim != 2:
        raise ValueError(f"expected probabilities of shape (N, classes), got {probabilities.shape}")
    if labels is not None and len(labels) != len(probabilities):
        raise ValueError(f"{len(labels)} labels for {len(probabilities)} rows of probabilities")
    return probabilities


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities float32 (N, C) with their log divided by ``temperature`` and renormalised."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = np.log(np.clip(_check(probabilities), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (a fine 1-D search)."""
    log_p = np.log(np.clip(_check(probabilities, labels), 1e-12, 1.0))
    labels = np.asarray(labels, np.int64)

    def nll(log_t: float) -> float:
        logits = log_p / np.exp(log_t)
        logits -= logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(logits).sum(axis=1))
        return float(np.mean(log_norm - logits[np.arange(len(labels)), labels]))

    coarse = _LOG_TEMPERATURES[int(np.argmin([nll(log_t) for log_t in _LOG_TEMPERATURES]))]
    step = _LOG_TEMPERATURES[1] - _LOG_TEMPERATURES[0]
    fine = np.linspace(coarse - step, coarse + step, 201)  # the loss is smooth: refine around the best
    return float(np.exp(fine[int(np.argmin([nll(log_t) for log_t in fine]))]))


def reliability_table(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> pd.DataFrame:
    """Top-1 confidence in ``bins`` equal-width bins: per bin its range, faces, mean confidence, accuracy."""
    probabilities = _check(probabilities, labels)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_confidence = np.bincount(index, confidence, bins) / counts
        accuracy = np.bincount(index, correct.astype(float), bins) / counts
    return pd.DataFrame(
        {
            "low": edges[:-1],
            "high": edges[1:],
            "faces": counts,
            "confidence": mean_confidence,
            "accuracy": accuracy,
        }
    )


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of the top-1 prediction: the face-weighted mean gap between confidence and accuracy per bin."""
    table = reliability_table(probabilities, labels, bins)
    filled = table[table.faces > 0]
    if filled.empty:
        return 0.0
    gaps = (filled.confidence - filled.accuracy).abs()
    return float((gaps * filled.faces).sum() / filled.faces.sum())


def fit_uncertain_threshold(probabilities: np.ndarray, labels: np.ndarray, window: int = 0) -> float:
    """The confidence below which a prediction is more likely wrong than right.

    Faces are sorted by top-1 confidence and their accuracy is taken over a sliding ``window`` of
    neighbours (default: a twentieth of the faces, at least 50); the threshold is the confidence of
    the last place where that local accuracy is at most one half (0 when it never is).
    """
    probabilities = _check(probabilities, labels)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    order = np.argsort(confidence, kind="stable")
    confidence, correct = confidence[order], correct[order].astype(float)
    window = min(len(correct), window or max(50, len(correct) // 20))
    if window == 0:
        return 0.0
    local = np.convolve(correct, np.ones(window) / window, mode="valid")  # accuracy of faces i..i+window
    centers = confidence[window // 2 : window // 2 + len(local)]
    coin_flip = np.flatnonzero(local <= 0.5)
    return float(centers[coin_flip[-1]]) if len(coin_flip) else 0.0


@dataclass(frozen=True)
class Calibration:
    """How a model's probabilities are calibrated: a temperature, and the calibrated top probability
    below which a prediction is marked uncertain. The defaults change nothing."""

    temperature: float = 1.0
    uncertain_below: float = 0.0

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        if self.temperature == 1.0:
            return np.asarray(probabilities, np.float32)
        return apply_temperature(probabilities, self.temperature)

    def to_dict(self) -> dict[str, float]:
        return {"temperature": round(self.temperature, 4), "uncertain_below": round(self.uncertain_below, 4)}

    @classmethod
    def from_dict(cls, values: dict | None) -> Calibration:
        if not values:
            return cls()
        return cls(float(values["temperature"]), float(values.get("uncertain_below", 0.0)))


def fit_calibration(probabilities: np.ndarray, labels: np.ndarray) -> tuple[Calibration, dict[str, float]]:
    """Fit the temperature and the uncertain threshold on held-out faces (PublicTest).

    Returns the calibration and what it did there: ECE before and after.
    """
    temperature = fit_temperature(probabilities, labels)
    calibrated = apply_temperature(probabilities, temperature)
    calibration = Calibration(temperature, fit_uncertain_threshold(calibrated, labels))
    fitted = {
        "ece_before": expected_calibration_error(probabilities, labels),
        "ece_after": expected_calibration_error(calibrated, labels),
    }
    return calibration, fitted
