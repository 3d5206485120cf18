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

import numpy as np

from fer_core.artifacts import load_model
from fer_core.data import full_dataset_path, load_dataset
from fer_core.emotions import FACE_SIZE
from fer_core.faces import ALIGNMENTS, DEFAULT_ALIGNMENT, Detection, align_faces, detect_faces
from fer_core.predict import predict_faces
from fer_core.preprocess import resize_faces
from fer_core.synthetic import nearest, place


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
