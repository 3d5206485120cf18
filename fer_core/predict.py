"""Prediction: from 48 x 48 faces, or from ordinary photos through face detection and cropping."""

from __future__ import annotations

import io
import os
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_core.artifacts import LoadedModel
from fer_core.config import TTA_MODES
from fer_core.emotions import EMOTIONS, FACE_SIZE
from fer_core.faces import (
    DEFAULT_ALIGNMENT,
    DEFAULT_DETECTOR,
    Detection,
    align_faces,
    detect_faces,
    whole_image_detection,
)
from fer_core.preprocess import resize_faces

MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused rather than risking memory
MAX_IMAGE_BYTES = 25 * 1024 * 1024


class ImageError(ValueError):
    """An input that cannot be used as an image; the message is meant for the person who sent it."""


@dataclass(frozen=True)
class Face:
    """One face: ``box`` (x, y, w, h) in the photo, the aligned uint8 48 x 48 ``crop``, calibrated
    float32 ``probabilities`` (7,), the detector's ``landmarks`` (5, 2) or None, and whether the
    model's confidence is below its card's uncertainty threshold."""

    box: tuple[int, int, int, int]
    crop: np.ndarray
    probabilities: np.ndarray
    landmarks: np.ndarray | None = None
    uncertain: bool = False

    @property
    def emotion(self) -> str:
        return EMOTIONS[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        """The calibrated probability of the predicted emotion."""
        return float(np.max(self.probabilities))

    def top(self, count: int = 2) -> list[tuple[str, float]]:
        """The ``count`` most probable emotions with their probabilities, most probable first."""
        order = np.argsort(self.probabilities)[::-1][:count]
        return [(EMOTIONS[index], float(self.probabilities[index])) for index in order]

    def to_dict(self) -> dict:
        return {
            "box": [int(v) for v in self.box],
            "emotion": self.emotion,
            "confidence": self.confidence,
            "uncertain": self.uncertain,
            "probabilities": {name: float(p) for name, p in zip(EMOTIONS, self.probabilities, strict=True)},
            "landmarks": None if self.landmarks is None else np.round(self.landmarks, 1).tolist(),
        }


@dataclass(frozen=True)
class ImageResult:
    """What one photo gave: its faces (possibly none), or an error message and no faces."""

    name: str
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    image: np.ndarray | None = None  # RGB uint8 (H, W, 3), upright (EXIF applied)
    whole_image: bool = False  # the whole photo was taken as one face

    def to_dict(self) -> dict:
        return {"image": self.name, "faces": [face.to_dict() for face in self.faces], "error": self.error}


def read_image(source: bytes | str | os.PathLike) -> np.ndarray:
    """Decode a photo to RGB uint8 (H, W, 3), turned upright by its EXIF orientation.

    16-bit and 32-bit integer images are scaled to 8 bits by their bit depth, float images from
    0..1 (or, outside that range, from their own minimum and maximum), so that a 16-bit PNG or a
    float TIFF keeps its contrast instead of clipping to white.

    Raises :class:`ImageError` with a plain message for a file that is not an image, is truncated,
    is empty or is too large.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    def to_8bit(image: Image.Image) -> Image.Image:
        # Pillow's convert("RGB") clips wide values at 255 instead of scaling them.
        if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
            return image
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if image.mode == "F" and low >= 0.0 and high <= 1.0:
            values = values * 255.0
        elif image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and 255 < high <= 65535):
            values = values / 257.0  # 65535 -> 255
        elif low < 0.0 or high > 255.0:
            values = (values - low) * (255.0 / (high - low))
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path} does not exist or is not a file")
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise ImageError(f"{path.name} is larger than {MAX_IMAGE_BYTES // 2**20} MB")
        data = path.read_bytes()
    else:
        data = bytes(source)
    if not data:
        raise ImageError("the file is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"the file is larger than {MAX_IMAGE_BYTES // 2**20} MB")
    plain = _decode_plain_png(data)
    if plain is not None:
        return plain
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise ImageError(
                        f"the image is {image.width} x {image.height} pixels; the limit is "
                        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels"
                    )
                image.load()
                ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of every upright photo
                upright = to_8bit(image).convert("RGB")
    except UnidentifiedImageError:
        raise ImageError(
            "the file is not an image in a format we can read (jpg, png, webp, bmp, tiff)"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("the image has too many pixels to open safely") from None
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, ImageError):
            raise
        raise ImageError(
            f"the image could not be decoded; it may be truncated or damaged ({error})"
        ) from None
    return np.asarray(upright)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _decode_plain_png(data: bytes) -> np.ndarray | None:
    """An 8-bit PNG without EXIF decoded by OpenCV, RGB uint8 (H, W, 3): the pixels Pillow gives
    (alpha dropped, gray and palette expanded), in about half the time, which counts when a folder
    of small face crops is scored. None for any other file, which then takes Pillow's path."""
    import cv2

    if len(data) < 33 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR" or data[24] != 8:
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if width * height > MAX_IMAGE_PIXELS or b"eXIf" in data:
        return None  # too large (refused on Pillow's path) or possibly turned by its EXIF
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) or gray (H, W) uint8 to gray (H, W) uint8."""
    import cv2

    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected (H, W) or (H, W, 3), got {image.shape}")


CROP_SHIFT = 3  # pixels of the shifted TTA crops at 48 x 48 (chosen on PublicTest: python -m bench.tta)


def tta_views(inputs: np.ndarray, mode: str, shift: int = CROP_SHIFT) -> list[np.ndarray]:
    """The views of uint8 faces (N, H, W) that test-time augmentation averages over.

    ``flip`` adds the mirrored faces; ``crops`` also adds the faces shifted by ``shift`` pixels
    (scaled to the input size) up, down, left and right, edges reflected as in training, and their
    mirrors: ten views.
    """
    if mode not in TTA_MODES:
        raise ValueError(f"tta must be one of {', '.join(TTA_MODES)}, got {mode!r}")
    views = [inputs]
    if mode == "crops":
        height, width = inputs.shape[1:3]
        step = max(1, round(shift * height / FACE_SIZE))
        padded = np.pad(inputs, ((0, 0), (step, step), (step, step)), mode="reflect")
        for dy, dx in ((-step, 0), (step, 0), (0, -step), (0, step)):
            views.append(padded[:, step + dy : step + dy + height, step + dx : step + dx + width])
    if mode != "none":
        views += [view[:, :, ::-1] for view in views]
    return [np.ascontiguousarray(view) for view in views]


# Keras ``predict`` costs tens of milliseconds a call whatever the batch; a compiled call of the model
# costs a few. Batches up to this size take the compiled call, larger ones ``predict``'s batching.
DIRECT_CALL_MAX = 512
_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


ONNX_BATCH = 256  # faces per onnxruntime call: the fastest of 128, 256 and 1,024 for the lite network


def run_model(model, inputs: np.ndarray) -> np.ndarray:
    """The outputs float32 (N, 7) of a Keras model or its ONNX export (an :class:`OnnxModel`) for
    float32 inputs (N, H, W), in as few calls as it can."""
    from fer_core.export import OnnxModel

    if isinstance(model, OnnxModel):
        if len(inputs) == 0:
            return np.empty((0, len(EMOTIONS)), np.float32)
        return np.concatenate([model(inputs[i : i + ONNX_BATCH]) for i in range(0, len(inputs), ONNX_BATCH)])
    import tensorflow as tf

    if len(inputs) > DIRECT_CALL_MAX:
        return np.asarray(model.predict(inputs, batch_size=256, verbose=0), np.float32)
    if model not in _compiled:
        signature = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        _compiled[model] = tf.function(lambda x: model(x, training=False), input_signature=[signature])
    return np.asarray(_compiled[model](tf.constant(inputs, tf.float32)), np.float32)


def predict_faces(
    loaded: LoadedModel, faces: np.ndarray, tta: str | None = None, *, calibrated: bool = True
) -> np.ndarray:
    """Probabilities float32 (N, 7) for uint8 faces (N, H, W), resized to the model's input.

    ``tta`` (none, flip, crops) averages the probabilities over views of each face (see
    :func:`tta_views`); by default the model's own setting from its card. The result is calibrated
    with the card's temperature unless ``calibrated`` is False (never changes the top emotion).
    """
    faces = np.asarray(faces)
    if faces.ndim == 2:
        faces = faces[None]
    if faces.ndim != 3:
        raise ValueError(f"expected faces of shape (N, H, W) or (H, W), got {faces.shape}")
    if len(faces) == 0:
        return np.empty((0, len(EMOTIONS)), np.float32)
    inputs = resize_faces(faces.astype(np.uint8), loaded.input_size)
    views = tta_views(inputs, loaded.tta if tta is None else tta)
    outputs = run_model(loaded.predictor, np.concatenate(views).astype(np.float32))
    probabilities = outputs.reshape(len(views), len(inputs), -1).mean(axis=0)
    return loaded.calibration.apply(probabilities) if calibrated else probabilities


def _name_of(source: bytes | str | os.PathLike, index: int) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else f"upload {index + 1}"


def analyze_images(
    sources: list[bytes | str | os.PathLike],
    loaded: LoadedModel,
    *,
    names: list[str] | None = None,
    detect: bool = True,
    whole_if_none: bool = False,
    tta: str | None = None,
    detector: str = DEFAULT_DETECTOR,
    upscale: float = 1.0,
    alignment: str = DEFAULT_ALIGNMENT,
) -> list[ImageResult]:
    """Find the faces of photos and predict each one's emotion; never raises for a bad image.

    Faces are detected, aligned by ``alignment`` and framed like FER2013 (:mod:`fer_core.faces`), and
    the faces of all the photos go through the model together. ``detect=False`` takes each whole image
    as one already cropped face; ``whole_if_none`` does the same when the detector finds no face.
    """
    names = names or [_name_of(source, index) for index, source in enumerate(sources)]
    if len(names) != len(sources):
        raise ValueError(f"{len(names)} names for {len(sources)} images")
    pending = []  # (name, image, detections, crops, whole) per readable photo
    results: dict[int, ImageResult] = {}
    for index, (source, name) in enumerate(zip(sources, names, strict=True)):
        try:
            image = read_image(source)
        except ImageError as error:
            results[index] = ImageResult(name=name, error=str(error))
            continue
        gray = to_gray(image)
        detections = detect_faces(image, detector, upscale=upscale) if detect else []
        whole = not detections and (not detect or whole_if_none)
        if whole:
            detections = [whole_image_detection(gray)]
            crops = resize_faces(_square(gray, detections[0])[None], FACE_SIZE)
        else:
            crops = align_faces(gray, detections, method=alignment)
        pending.append((index, name, image, detections, crops, whole))
    all_crops = [crops for *_, crops, _ in pending]
    probabilities = predict_faces(loaded, np.concatenate(all_crops), tta=tta) if all_crops else None
    threshold = loaded.calibration.uncertain_below
    start = 0
    for index, name, image, detections, crops, whole in pending:
        chunk = probabilities[start : start + len(crops)]
        start += len(crops)
        faces = [
            Face(
                box=detection.box,
                crop=crop,
                probabilities=p,
                landmarks=detection.landmarks,
                uncertain=bool(p.max() < threshold),
            )
            for detection, crop, p in zip(detections, crops, chunk, strict=True)
        ]
        results[index] = ImageResult(name=name, faces=faces, image=image, whole_image=whole)
    return [results[index] for index in range(len(sources))]


def _square(gray: np.ndarray, detection: Detection) -> np.ndarray:
    x, y, w, h = detection.box
    return gray[y : y + h, x : x + w]


def analyze_image(
    source: bytes | str | os.PathLike, loaded: LoadedModel, *, name: str | None = None, **options
) -> ImageResult:
    """:func:`analyze_images` for one photo."""
    return analyze_images([source], loaded, names=[name or _name_of(source, 0)], **options)[0]


def _feature_network(loaded: LoadedModel):
    """The network whose layers the feature maps show: the model, or an ensemble's first member."""
    names = {layer.name for layer in loaded.model.layers}
    return loaded.model.get_layer("member_1") if "member_1" in names else loaded.model


def feature_layers(loaded: LoadedModel) -> list[str]:
    """Names of the model's conv layers and their activations (conv1, hidden1, conv2, ...), in order."""
    return [
        layer.name for layer in _feature_network(loaded).layers if layer.name.startswith(("conv", "hidden"))
    ]


def layer_activations(
    loaded: LoadedModel, face: np.ndarray, layers: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Activations (H, W, C) float32 of the named layers (default: all conv and activation layers)
    for one uint8 face (H, W), as the model sees it at prediction time."""
    import keras

    network = _feature_network(loaded)
    names = layers or feature_layers(loaded)
    probe = keras.Model(network.inputs, [network.get_layer(name).output for name in names])
    inputs = resize_faces(np.asarray(face, np.uint8)[None], loaded.input_size)
    outputs = probe.predict(inputs, verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return {name: np.asarray(output[0], np.float32) for name, output in zip(names, outputs, strict=True)}


def results_table(results: list[ImageResult]):
    """One row per face found in the photos: image, face number, box, emotion and probabilities."""
    import pandas as pd

    rows = [
        {
            "image": result.name,
            "face": number,
            "x": face.box[0],
            "y": face.box[1],
            "w": face.box[2],
            "h": face.box[3],
            "emotion": face.emotion,
            **{f"p_{name}": float(p) for name, p in zip(EMOTIONS, face.probabilities, strict=True)},
        }
        for result in results
        for number, face in enumerate(result.faces, start=1)
    ]
    return pd.DataFrame(rows)
