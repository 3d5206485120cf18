"""The photo path against the faces themselves: PublicTest faces placed into larger synthetic photos.

    python -m bench.photo_path [--model models/default] [--data PATH] [--faces N] [--seed 0]

Each PublicTest face is enlarged to 96-220 px, turned by up to 15 degrees either way and put at a
random place of a 640 x 480 photo with a varied background (smooth noise, gradients, clutter), its
edges carried on and faded into the background as a head continues past a crop. The
photos go through the product's path (detect -> align -> crop -> predict) and the accuracy is
compared with predicting the 48 x 48 faces directly, with the model's own test-time augmentation.
A face the detector misses counts as wrong. Every alignment of :mod:`fer_core.faces` is measured on
the same detections, and the crop of the dashboard's first version (the box stretched to a square).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from fer_core.artifacts import load_model
from fer_core.data import full_dataset_path, load_dataset
from fer_core.emotions import FACE_SIZE
from fer_core.faces import (
    ALIGNMENTS,
    CONTEXT,
    DEFAULT_ALIGNMENT,
    Detection,
    align_faces,
    detect_faces,
    face_in_context,
)
from fer_core.predict import predict_faces
from fer_core.preprocess import resize_faces

WIDTH, HEIGHT = 640, 480


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
    angle = rng.uniform(-15, 15)
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


def stretched_box_crop(gray: np.ndarray, detection: Detection) -> np.ndarray:
    """The detector's box resized to a square as it is (the crop before this path existed)."""
    x, y, w, h = detection.box
    return resize_faces(gray[y : y + h, x : x + w][None], FACE_SIZE)[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the default model)")
    parser.add_argument("--data", type=Path, default=full_dataset_path())
    parser.add_argument("--faces", type=int, default=0, help="the first N PublicTest faces (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("the full FER2013 is needed: set FER2013_CSV or pass --data")
    loaded = load_model(args.model)
    public = load_dataset(args.data).splits["PublicTest"]
    count = args.faces or len(public)
    faces, labels = public.images[:count], public.labels[:count]
    rng = np.random.default_rng(args.seed)

    started = time.perf_counter()
    kinds = {
        f"aligned: {method}" + (" (default)" if method == DEFAULT_ALIGNMENT else ""): method
        for method in ALIGNMENTS
    }
    crops = {kind: [] for kind in [*kinds, "box stretched to a square"]}
    found = np.zeros(count, bool)
    for index, face in enumerate(faces):
        photo, center, _ = place(face, rng)
        detection = nearest(detect_faces(photo), center)
        if detection is None:
            for kind in crops:
                crops[kind].append(np.zeros((FACE_SIZE, FACE_SIZE), np.uint8))
            continue
        found[index] = True
        for kind, method in kinds.items():
            crops[kind].append(align_faces(photo, [detection], method=method)[0])
        crops["box stretched to a square"].append(stretched_box_crop(photo, detection))
    detect_seconds = time.perf_counter() - started

    direct = predict_faces(loaded, faces).argmax(axis=1) == labels
    print(
        f"\n{loaded.name} (TTA {loaded.tta}) on {count:,} PublicTest faces placed in 640 x 480 photos "
        f"(seed {args.seed}); detection and cropping {detect_seconds / count * 1000:.0f} ms a photo\n"
    )
    print(f"{'path':<34}{'accuracy':>10}{'vs direct':>11}{'on found faces':>16}")
    print(f"{'48 x 48 faces directly':<34}{direct.mean():>10.2%}{'':>11}{direct[found].mean():>16.2%}")
    for kind, images in crops.items():
        right = (predict_faces(loaded, np.stack(images)).argmax(axis=1) == labels) & found
        gap = (right.mean() - direct.mean()) * 100
        print(f"{kind:<34}{right.mean():>10.2%}{gap:>+10.2f}p{right[found].mean():>16.2%}")
    print(
        f"\nfaces found by the detector: {found.sum():,} of {count:,} ({found.mean():.1%}); "
        "a missed face counts as wrong"
    )


if __name__ == "__main__":
    main()
