"""Faces placed in synthetic photos, and training faces framed the way the photo path frames them.

A FER2013 face is enlarged to 96-220 px, turned by up to 15 degrees either way and put at a random
place of a 640 x 480 photo with a varied background (smooth noise, gradients, clutter), its edges
carried on and faded into the background as a head continues past a crop. ``bench.photo_path``
measures the product's path (detect -> align -> crop -> predict) on such photos of PublicTest faces.

The detector's aligned crop of a face differs from FER2013's own crop of it by a few pixels per
landmark and about ten degrees of tilt, and a network trained on FER2013's framing alone loses points
on those crops. :func:`photo_crops` gives Training faces as the photo path shows them, so that
training (``TrainConfig.photo_crops``) can show the network both framings.
"""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np

from fer_core.data import FaceSet, cache_dir
from fer_core.emotions import FACE_SIZE
from fer_core.faces import CONTEXT, FRAMING_PATH, Detection, align_faces, detect_faces, face_in_context

WIDTH, HEIGHT = 640, 480
MAX_TURN = 15.0  # degrees either way a face is turned in a synthetic photo
VERSION = 1  # of the photos and crops made here: part of the crops' cache key


def background(rng: np.random.Generator) -> np.ndarray:
    """A gray (480, 640) uint8 background of one of four kinds."""
    kind = rng.integers(4)
    if kind == 0:  # smooth blotches
        small = rng.integers(0, 256, (6, 8)).astype(np.float32)
        image = cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:  # a gradient at a random angle
        angle = rng.uniform(0, 2 * np.pi)
        x, y = np.meshgrid(np.linspace(-1, 1, WIDTH), np.linspace(-1, 1, HEIGHT))
        image = 128 + 100 * (np.cos(angle) * x + np.sin(angle) * y) / np.sqrt(2)
    elif kind == 2:  # flat with sensor-like noise
        image = np.full((HEIGHT, WIDTH), rng.uniform(30, 225)) + rng.normal(0, 12, (HEIGHT, WIDTH))
    else:  # clutter: rectangles and lines of random grays
        image = np.full((HEIGHT, WIDTH), rng.uniform(60, 200), np.float32)
        for _ in range(25):
            x0, y0 = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
            x1, y1 = x0 + int(rng.integers(-150, 150)), y0 + int(rng.integers(-150, 150))
            shade = float(rng.uniform(0, 255))
            if rng.random() < 0.5:
                cv2.rectangle(image, (x0, y0), (x1, y1), shade, -1)
            else:
                cv2.line(image, (x0, y0), (x1, y1), shade, int(rng.integers(1, 8)))
    return np.clip(image, 0, 255).astype(np.uint8)


def place(face: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float], np.ndarray]:
    """A synthetic photo (480, 640) holding ``face`` scaled, turned and shifted; the face's centre;
    and the 2 x 3 transform from photo pixels to the pixels of the 48 x 48 face (the true crop).

    A real photo goes on past the part FER2013 cropped (hair, ears, neck): the face's edge pixels are
    carried outwards and faded into the background over half a face's width, rather than pasting a
    hard-edged square that no real photo has.
    """
    side = rng.uniform(96, 220)
    angle = rng.uniform(-MAX_TURN, MAX_TURN)
    reach = side * 0.75  # half the diagonal of the turned square, with a margin
    center = (rng.uniform(reach, WIDTH - reach), rng.uniform(reach, HEIGHT - reach))
    extended, fade = face_in_context(face)
    extended = extended.astype(np.uint8)
    full = extended.shape[0]
    matrix = cv2.getRotationMatrix2D((full / 2, full / 2), angle, side / FACE_SIZE)
    matrix[:, 2] += np.array(center) - full / 2
    zoom = 4  # warp from an enlarged copy so that the photo is not blocky
    big = cv2.resize(extended, (full * zoom, full * zoom), interpolation=cv2.INTER_CUBIC)
    fade_big = cv2.resize(fade, (full * zoom, full * zoom), interpolation=cv2.INTER_LINEAR)
    matrix_big = matrix @ np.diag([1 / zoom, 1 / zoom, 1.0])
    warped = cv2.warpAffine(big, matrix_big, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(fade_big, matrix_big, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
    photo = background(rng).astype(np.float32)
    photo = photo * (1 - mask) + warped.astype(np.float32) * mask
    # The face's own pixel (u, v) is pixel (u + CONTEXT, v + CONTEXT) of the extended face.
    to_photo = np.vstack([matrix, [0, 0, 1]]) @ np.array([[1, 0, CONTEXT], [0, 1, CONTEXT], [0, 0, 1]])
    return np.clip(photo, 0, 255).astype(np.uint8), center, np.linalg.inv(to_photo)[:2]


def nearest(detections: list[Detection], center: tuple[float, float]) -> Detection | None:
    """The detection whose box centre is closest to where the face was put (None if none is near)."""
    best, distance = None, np.inf
    for detection in detections:
        x, y, w, h = detection.box
        gap = np.hypot(x + w / 2 - center[0], y + h / 2 - center[1])
        if gap < distance and gap < max(w, h):
            best, distance = detection, gap
    return best


def photo_crops(faces: FaceSet, count: int, seed: int) -> tuple[FaceSet, np.ndarray]:
    """The detector's aligned crops of ``count`` faces (a seeded random choice) placed in synthetic
    photos, with their labels, and the index in ``faces`` of each crop's face; a face the detector
    misses gives no crop."""
    rng = np.random.default_rng(seed)
    crops, sources = [], []
    for index in rng.permutation(len(faces))[:count]:
        photo, center, _ = place(faces.images[index], rng)
        # Training crops keep the faces found at the detector's own threshold (as when they were cached).
        detection = nearest(detect_faces(photo, second_look=False), center)
        if detection is not None:
            # The framing the shipped networks were fine-tuned on (cached crops do not record it).
            crops.append(align_faces(photo, [detection], method="levelled_box")[0])
            sources.append(index)
    images = np.stack(crops) if crops else np.empty((0, FACE_SIZE, FACE_SIZE), np.uint8)
    sources = np.array(sources, np.int64)
    return FaceSet(images=images, labels=faces.labels[sources].astype(np.int64)), sources


def cached_photo_crops(faces: FaceSet, count: int, seed: int, source_key: str) -> FaceSet:
    """:func:`photo_crops`, cached in the data cache under the source's cache key, the count, the seed,
    this module's version and the framing (a few minutes of detection for 10,000 faces, done once)."""
    framing = hashlib.sha256(FRAMING_PATH.read_bytes()).hexdigest()
    settings = json.dumps([source_key, count, seed, VERSION, framing])
    key = hashlib.sha256(settings.encode()).hexdigest()[:24]
    path = cache_dir() / f"photo-crops-{key}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return FaceSet(images=stored["images"], labels=stored["labels"])
    crops, _ = photo_crops(faces, count, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{id(crops)}.tmp.npz")
    np.savez(temporary, images=crops.images, labels=crops.labels)
    temporary.replace(path)
    return crops
