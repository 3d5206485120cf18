"""The fast inference path: a model exported to ONNX and run by onnxruntime, checked against Keras.

A model folder may hold ``model.onnx`` beside ``model.keras``; its card's ``export`` entry records the
file's sha256 and how far its probabilities are from Keras's on real faces. Prediction then runs the
ONNX graph (:class:`OnnxModel`, which takes the same float32 (N, H, W) inputs and gives the same
(N, 7) probabilities) while Grad-CAM and feature maps keep using the Keras model.

Exporting needs ``tf2onnx`` (a development requirement); running needs only ``onnxruntime``, which
the face detector brings already.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

ONNX_FILE = "model.onnx"
OPSET = 17
TOLERANCE = 1e-4  # the largest difference from Keras's probabilities a shipped export may have


class ExportError(ValueError):
    """An export that cannot be made, read, or that does not agree with its Keras model."""


def export_onnx(model, path: str | os.PathLike) -> Path:
    """Write the inference graph of a Keras ``model`` (uint8-valued float32 faces (N, H, W) in,
    probabilities (N, 7) out) to ``path`` as ONNX.

    The graph is traced with ``training=False``, so the augmentation layers that a training model
    carries are left out (onnxruntime has no kernel for their random ops).
    """
    import tensorflow as tf
    import tf2onnx

    signature = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="faces")]
    function = tf.function(lambda faces: model(faces, training=False), input_signature=signature)
    path = Path(path)
    tf2onnx.convert.from_function(function, input_signature=signature, opset=OPSET, output_path=str(path))
    return path


class OnnxModel:
    """An ONNX export run by onnxruntime, called like the Keras model it came from:
    ``model(faces)`` with float32 (N, H, W) faces gives float32 (N, 7) probabilities."""

    def __init__(self, path: str | os.PathLike, threads: int = 0) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's choice, one per core
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped errors for damaged files
            raise ExportError(f"{path} cannot be read by onnxruntime: {str(error)[:200]}") from None
        self.path = Path(path)
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = tuple(self.session.get_inputs()[0].shape)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        faces = np.ascontiguousarray(faces, np.float32)
        if faces.ndim != 3:
            raise ValueError(f"expected faces of shape (N, H, W), got {faces.shape}")
        return self.session.run(None, {self.input_name: faces})[0]


def max_difference(model, exported: OnnxModel, faces: np.ndarray, batch: int = 512) -> float:
    """The largest absolute difference between the probabilities of the Keras ``model`` and of its
    export on uint8 ``faces`` (N, H, W) at the model's input size."""
    from fer_core.predict import run_model

    largest = 0.0
    for start in range(0, len(faces), batch):
        inputs = np.asarray(faces[start : start + batch], np.float32)
        largest = max(largest, float(np.abs(run_model(model, inputs) - exported(inputs)).max()))
    return largest


def export_entry(path: Path, sha256: str, difference: float, checked_on: str, faces: int) -> dict[str, Any]:
    """The card's ``export`` entry for an ONNX file."""
    return {
        "onnx": {
            "file": path.name,
            "sha256": sha256,
            "opset": OPSET,
            "max_abs_difference": difference,
            "checked_on": f"{faces:,} {checked_on} faces",
        }
    }
