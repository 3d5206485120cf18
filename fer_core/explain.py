"""Where the network looked: Grad-CAM heat maps for faces, and their overlays on the face.

Grad-CAM (Selvaraju et al., 2017) weighs the last convolutional feature maps by the gradient of an
emotion's score (the logit before the softmax) and keeps the positive part. An ensemble's map is the
mean of its members' maps, each scaled to [0, 1], scaled again to peak at 1 like a single network's.
The maps are of the face as given (no test-time views).
"""

from __future__ import annotations

import numpy as np

from fer_core.artifacts import LoadedModel
from fer_core.emotions import EMOTIONS
from fer_core.preprocess import resize_faces


def _networks(model) -> list:
    """The networks whose maps are averaged: an ensemble's members, or the model itself."""
    members = [layer for layer in model.layers if layer.name.startswith("member_")]
    return members or [model]


def _grad_model(network):
    """A model from the faces to (last conv feature maps, logits) of one network.

    The feature maps are those before the last pooling, where the network still sees 6 x 6 places
    of the face rather than 3 x 3.
    """
    import keras

    layers = [layer for layer in network.layers if len(layer.output.shape) == 4]
    while isinstance(layers[-1], keras.layers.MaxPooling2D | keras.layers.Dropout) and len(layers) > 1:
        layers.pop()
    return keras.Model(network.inputs, [layers[-1].output, network.get_layer("logits").output])


def grad_cam(loaded: LoadedModel, faces: np.ndarray, emotions: np.ndarray | int | None = None) -> np.ndarray:
    """Heat maps float32 (N, H, W) in [0, 1] for uint8 faces (N, H, W), at the faces' own size.

    ``emotions`` picks the emotion each map explains (an index 0..6, one for all or one per face);
    by default the emotion the model predicts for the face.
    """
    import cv2
    import tensorflow as tf

    faces = np.asarray(faces)
    if faces.ndim != 3:
        raise ValueError(f"expected faces of shape (N, H, W), got {faces.shape}")
    if len(faces) == 0:
        return np.empty(faces.shape, np.float32)
    inputs = tf.constant(resize_faces(faces.astype(np.uint8), loaded.input_size), tf.float32)
    if emotions is None:
        emotions = np.asarray(loaded.model(inputs, training=False)).argmax(axis=1)
    emotions = np.broadcast_to(np.asarray(emotions, np.int64), (len(faces),))
    if emotions.min() < 0 or emotions.max() >= len(EMOTIONS):
        raise ValueError(f"emotions must be indices 0..{len(EMOTIONS) - 1}, got {emotions.tolist()}")
    maps = np.zeros((len(faces), loaded.input_size, loaded.input_size), np.float32)
    networks = _networks(loaded.model)
    for network in networks:
        probe = _grad_model(network)
        with tf.GradientTape() as tape:
            features, logits = probe(inputs, training=False)
            score = tf.gather(logits, emotions, batch_dims=1)
        gradients = tape.gradient(score, features)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cams = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1)).numpy()
        for index, cam in enumerate(cams):
            cam = cv2.resize(cam, (loaded.input_size, loaded.input_size), interpolation=cv2.INTER_LINEAR)
            peak = cam.max()
            maps[index] += cam / peak if peak > 0 else cam
    peaks = maps.max(axis=(1, 2), keepdims=True)  # an ensemble's mean peaks below 1 where members differ
    maps = np.divide(maps, peaks, out=maps, where=peaks > 0)
    if loaded.input_size != faces.shape[1]:
        size = (faces.shape[2], faces.shape[1])
        maps = np.stack([cv2.resize(cam, size, interpolation=cv2.INTER_LINEAR) for cam in maps])
    return np.clip(maps, 0.0, 1.0)


def overlay(face: np.ndarray, heatmap: np.ndarray, size: int = 192, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 (size, size, 3): a gray uint8 face (H, W) under its heat map (H, W) in [0, 1],
    enlarged for viewing, red where the network looked most."""
    import cv2

    if face.shape != heatmap.shape:
        raise ValueError(f"face {face.shape} and heat map {heatmap.shape} differ in shape")
    face = cv2.resize(np.asarray(face, np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
    heat = cv2.resize(np.asarray(heatmap, np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    colours = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB)
    gray = cv2.cvtColor(face, cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(gray, 1 - alpha, colours, alpha, 0.0)
