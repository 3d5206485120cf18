"""Face detectors that ship with their packages, on the real photos: faces found and time per photo.

    python -m bench.detectors [--photos tests/data/photos]

The expected counts come from the photos' README (1, 5, 29 small faces, 0). Time is the mean of three
runs after a warm-up, and is also given as a ratio to the Haar cascade's in the same run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fer_core.predict import DETECTORS, detect_faces, read_image

EXPECTED = {"single_face.jpg": 1, "multi_face.jpg": 5, "group_solvay_1927.jpg": 29, "no_face.jpg": 0}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--photos", type=Path, default=Path(__file__).resolve().parent.parent / "tests/data/photos"
    )
    args = parser.parse_args()
    images = {name: read_image(args.photos / name) for name in EXPECTED}
    found, seconds = {}, {}
    for detector in DETECTORS:
        detect_faces(images["single_face.jpg"], detector)  # warm-up: loads the model
        for name, image in images.items():
            started = time.perf_counter()
            for _ in range(3):
                boxes = detect_faces(image, detector)
            seconds[detector, name] = (time.perf_counter() - started) / 3
            found[detector, name] = len(boxes)

    print(f"{'photo':<24}{'faces':>6}" + "".join(f"{d + ' found':>13}{d + ' ms':>10}" for d in DETECTORS))
    for name, expected in EXPECTED.items():
        cells = "".join(f"{found[d, name]:>13}{seconds[d, name] * 1000:>10.0f}" for d in DETECTORS)
        print(f"{name:<24}{expected:>6}{cells}")
    total = {d: sum(seconds[d, n] for n in EXPECTED) for d in DETECTORS}
    recall = {
        d: sum(min(found[d, n], e) for n, e in EXPECTED.items()) / sum(EXPECTED.values()) for d in DETECTORS
    }
    print()
    for d in DETECTORS:
        print(f"{d}: found {recall[d]:.0%} of the faces in {total[d] / total['haar']:.1f}x Haar's time")


if __name__ == "__main__":
    main()
