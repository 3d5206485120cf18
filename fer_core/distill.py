"""Knowledge distillation: a teacher model's softened probabilities as extra training targets.

A run with ``teacher`` set trains on targets of 14 columns per face: the one-hot label and the
teacher's probabilities (with the teacher's own test-time augmentation, before calibration) softened
at ``distill_temperature``. :func:`distillation_loss` mixes the label's cross-entropy with the
Kullback-Leibler divergence from the softened teacher, scaled by T^2 as in Hinton et al. (2015) so
that its gradients keep their size whatever the temperature.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from fer_core.emotions import NUM_CLASSES

TARGETS_FILE = "teacher.npz"  # the teacher's targets, kept in the run folder so a resumed run reuses them
EPSILON = 1e-7


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities float32 (N, 7) raised to the power 1/T and renormalised: the softmax of the
    logits divided by T, since a softmax's log-probabilities are its logits up to a constant."""
    logits = np.log(np.clip(probabilities, EPSILON, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    soft = np.exp(logits)
    return (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)


def teacher_targets(
    teacher: str | Path, faces: dict[str, np.ndarray], run_dir: Path
) -> dict[str, np.ndarray]:
    """The teacher's probabilities (N, 7) for each named set of uint8 faces (N, H, W), computed once
    per run folder and reused when the run resumes (keyed by the teacher's weights and the faces)."""
    from fer_core.artifacts import load_model
    from fer_core.predict import predict_faces

    loaded = load_model(teacher)
    digest = hashlib.sha256(loaded.card["weights_sha256"].encode() + loaded.tta.encode())
    for name in sorted(faces):
        digest.update(name.encode() + hashlib.sha256(np.ascontiguousarray(faces[name])).digest())
    cache = run_dir / TARGETS_FILE
    if cache.is_file():
        stored = np.load(cache)
        if str(stored["key"]) == digest.hexdigest():
            return {name: stored[name] for name in faces}
    targets = {name: predict_faces(loaded, images, calibrated=False) for name, images in faces.items()}
    from fer_core.artifacts import staged

    with staged(cache) as path, open(path, "wb") as stream:
        np.savez(stream, key=digest.hexdigest(), **targets)
    return targets


def distillation_loss(temperature: float, weight: float, label_smoothing: float = 0.0):
    """A Keras loss for targets (N, 14) = [one-hot labels, softened teacher probabilities] and the
    student's probabilities (N, 7):
    ``(1 - weight) * CE(labels) + weight * T^2 * KL(teacher || student at T)``."""
    import keras
    from keras import ops

    cross_entropy = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing, reduction=None)

    def loss(targets, probabilities):
        labels, teacher = targets[:, :NUM_CLASSES], targets[:, NUM_CLASSES:]
        log_student = ops.log_softmax(ops.log(ops.clip(probabilities, EPSILON, 1.0)) / temperature, axis=-1)
        divergence = ops.sum(teacher * (ops.log(ops.clip(teacher, EPSILON, 1.0)) - log_student), axis=-1)
        return (1 - weight) * cross_entropy(labels, probabilities) + weight * temperature**2 * divergence

    return loss


def label_accuracy(targets, probabilities):
    """Top-1 accuracy against the label columns of (N, 7) or distillation (N, 14) targets."""
    from keras import ops

    labels = targets[:, :NUM_CLASSES]
    return ops.cast(ops.equal(ops.argmax(labels, axis=-1), ops.argmax(probabilities, axis=-1)), "float32")
