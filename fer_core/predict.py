"""Prediction: from 48 x 48 faces, or from ordinary photos through face detection and cropping."""

from __future__ import annotations

import functools
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_core.artifacts import LoadedModel
from fer_core.config import TTA_MODES
from fer_core.emotions import EMOTIONS, FACE_SIZE
from fer_core.preprocess import resize_faces

MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused rather than risking memory
MAX_IMAGE_BYTES = 25 * 1024 * 1024


class ImageError(ValueError):
    """An input that cannot be used as an image; the message is meant for the person who sent it."""


@dataclass(frozen=True)
class Face:
    """One face: ``box`` (x, y, w, h) in the photo, the uint8 48 x 48 ``crop``, float32 probabilities."""

    box: tuple[int, int, int, int]
    crop: np.ndarray
    probabilities: np.ndarray

    @property
    def emotion(self) -> str:
        return EMOTIONS[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))

    def to_dict(self) -> dict:
        return {
            "box": [int(v) for v in self.box],
            "emotion": self.emotion,
            "probabilities": {name: float(p) for name, p in zip(EMOTIONS, self.probabilities, strict=True)},
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

    Raises :class:`ImageError` with a plain message for a file that is not an image, is truncated,
    is empty or is too large.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

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
                upright = ImageOps.exif_transpose(image).convert("RGB")
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


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) or gray (H, W) uint8 to gray (H, W) uint8."""
    import cv2

    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected (H, W) or (H, W, 3), got {image.shape}")


DETECTORS = ("mtcnn", "haar")
MIN_CONFIDENCE = 0.9  # MTCNN boxes below this are mostly not faces


@functools.cache
def _haar():
    import cv2

    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(f"OpenCV's face cascade could not be loaded from {path}")
    return cascade


@functools.cache
def _mtcnn():
    from mtcnn import MTCNN

    return MTCNN()


def detect_faces(
    image: np.ndarray, detector: str = "mtcnn", min_size: int = 20
) -> list[tuple[int, int, int, int]]:
    """Faces in an RGB (H, W, 3) or gray (H, W) uint8 image as (x, y, w, h) boxes, left to right.

    ``mtcnn`` (the default) is the MTCNN cascade whose weights ship inside the ``mtcnn`` package;
    ``haar`` is OpenCV's frontal-face Haar cascade, the report-era choice, shipped with OpenCV 4.x.
    ``bench/detectors.py`` compares them on the real photos. Nothing is downloaded.
    """
    import cv2

    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    if detector == "haar":
        boxes = _haar().detectMultiScale(
            cv2.equalizeHist(to_gray(image)), scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size)
        )
    else:
        rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        found = _mtcnn().detect_faces(rgb, min_face_size=min_size)
        boxes = [face["box"] for face in found if face["confidence"] >= MIN_CONFIDENCE]
    height, width = image.shape[:2]
    clipped = []
    for x, y, w, h in (tuple(int(v) for v in box) for box in boxes):
        x, y = max(x, 0), max(y, 0)
        w, h = min(w, width - x), min(h, height - y)
        if w > 1 and h > 1:
            clipped.append((x, y, w, h))
    return sorted(clipped, key=lambda box: (box[0], box[1]))


def crop_faces(gray: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """The 48 x 48 uint8 faces (N, 48, 48) inside ``boxes`` of a gray image."""
    crops = [resize_faces(gray[y : y + h, x : x + w][None], FACE_SIZE)[0] for x, y, w, h in boxes]
    return np.stack(crops) if crops else np.empty((0, FACE_SIZE, FACE_SIZE), np.uint8)


def whole_face(gray: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The largest centred square of a gray image, as a box and its 48 x 48 crop."""
    height, width = gray.shape
    side = min(height, width)
    box = ((width - side) // 2, (height - side) // 2, side, side)
    return box, crop_faces(gray, [box])[0]


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


def predict_faces(loaded: LoadedModel, faces: np.ndarray, tta: str | None = None) -> np.ndarray:
    """Probabilities float32 (N, 7) for uint8 faces (N, H, W), resized to the model's input.

    ``tta`` (none, flip, crops) averages the probabilities over views of each face (see
    :func:`tta_views`); by default the model's own setting from its card.
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
    probabilities = loaded.model.predict(np.concatenate(views), batch_size=256, verbose=0)
    probabilities = np.asarray(probabilities, np.float32).reshape(len(views), len(inputs), -1).mean(axis=0)
    return probabilities


def analyze_image(
    source: bytes | str | os.PathLike,
    loaded: LoadedModel,
    *,
    name: str | None = None,
    detect: bool = True,
    whole_if_none: bool = False,
    tta: str | None = None,
    detector: str = "mtcnn",
) -> ImageResult:
    """Find the faces of one photo and predict each one's emotion; never raises for a bad image.

    ``detect=False`` takes the whole image as one already cropped face; ``whole_if_none`` does the
    same when the detector finds no face.
    """
    name = name or (str(source) if isinstance(source, (str, os.PathLike)) else "upload")
    try:
        image = read_image(source)
    except ImageError as error:
        return ImageResult(name=name, error=str(error))
    gray = to_gray(image)
    boxes = detect_faces(image, detector) if detect else []
    whole = not boxes and (not detect or whole_if_none)
    if whole:
        box, crop = whole_face(gray)
        boxes, crops = [box], crop[None]
    else:
        crops = crop_faces(gray, boxes)
    probabilities = predict_faces(loaded, crops, tta=tta)
    faces = [
        Face(box=box, crop=crop, probabilities=p)
        for box, crop, p in zip(boxes, crops, probabilities, strict=True)
    ]
    return ImageResult(name=name, faces=faces, image=image, whole_image=whole)


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
