"""Batch-norm statistics re-estimated on the faces as prediction sees them.

A network trained with on-the-fly augmentation keeps, in each batch-norm layer, the running mean and
variance of its *augmented* training inputs: shifted, turned, zoomed and (``strong``) partly erased
faces. Prediction sees the faces plain, so every layer normalises with statistics of another
distribution. :func:`refit_batch_norm` replaces them with their average over the training faces
without augmentation (the "update_bn" pass of stochastic weight averaging, Izmailov et al. 2018);
no weight is trained and no held-out face is seen.
"""

from __future__ import annotations

import numpy as np

RANDOM_LAYERS = (
    "RandomFlip",
    "RandomTranslation",
    "RandomRotation",
    "RandomZoom",
    "RandomErasing",
    "Dropout",
)


def _plain_twin(model):
    """A copy of ``model`` (same weights) with its augmentation and dropout layers made identities, so
    that a call in training mode changes only how batch norm normalises and what it records."""
    import keras

    def clone(layer):
        if type(layer).__name__ in RANDOM_LAYERS:
            return keras.layers.Identity(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    twin = keras.models.clone_model(model, clone_function=clone)
    for layer in twin.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return twin


def refit_batch_norm(model, faces: np.ndarray, *, batch_size: int = 256, seed: int = 0) -> int:
    """Set the moving mean and variance of every batch-norm layer of ``model`` to their average over
    ``faces`` (uint8-valued (N, H, W) at the model's input size, shuffled into batches), seen without
    augmentation. Returns how many layers were refitted (0 for a model without batch norm)."""
    import keras

    twin = _plain_twin(model)
    norms = [layer for layer in twin.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return 0
    order = np.random.default_rng(seed).permutation(len(faces))
    starts = range(0, len(faces) - batch_size + 1, batch_size) if len(faces) >= batch_size else [0]
    for count, start in enumerate(starts):
        for layer in norms:
            layer.momentum = count / (count + 1)  # a running average: batch k weighs 1 / (k + 1)
        twin(np.asarray(faces[order[start : start + batch_size]], np.float32), training=True)
    for layer in norms:
        model.get_layer(layer.name).set_weights(layer.get_weights())
    return len(norms)
