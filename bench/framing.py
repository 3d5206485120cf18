"""Learn where FER2013's faces sit in their crops, as the face detector sees them, and ship it.

    python -m bench.framing [--data PATH] [--faces 3000] [--detector retinaface] [--write]

Runs the detector on Training faces (enlarged 4x, padded into a larger canvas), maps its landmarks
and box back into the 48 x 48 crop, and prints their median positions and spread. ``--write`` stores
the framing in ``fer_core/framing.json``, which :func:`fer_core.faces.align_faces` uses. Training rows
only: the held-out splits stay out of every choice.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fer_core.data import full_dataset_path, load_dataset
from fer_core.faces import (
    DEFAULT_DETECTOR,
    DETECTORS,
    FRAMING_PATH,
    LANDMARKS,
    detect_in_fer_face,
    fit_framing,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=full_dataset_path())
    parser.add_argument("--faces", type=int, default=3000, help="Training faces to run the detector on")
    parser.add_argument(
        "--detector", default=DEFAULT_DETECTOR, choices=DETECTORS[:2], help="one with landmarks"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help=f"write {FRAMING_PATH.name}")
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("the full FER2013 is needed: set FER2013_CSV or pass --data")
    training = load_dataset(args.data).splits["Training"]
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(training), min(args.faces, len(training)), replace=False)
    faces = training.images[np.sort(chosen)]

    started = time.perf_counter()
    framing, used = fit_framing(faces, args.detector)
    seconds = time.perf_counter() - started
    spread = np.stack(
        [
            d.landmarks
            for d in (detect_in_fer_face(face, args.detector) for face in faces[:300])
            if d is not None
        ]
    ).std(axis=0)
    print(
        f"\n{args.detector} on {len(faces):,} Training faces: a face in {used:,} ({used / len(faces):.1%}), "
        f"{seconds:.0f} s\n"
    )
    print(f"{'landmark':<14}{'x':>8}{'y':>8}{'sd x':>8}{'sd y':>8}   (pixels of the 48 x 48 crop)")
    for name, (x, y), (sx, sy) in zip(LANDMARKS, framing.landmarks, spread, strict=True):
        print(f"{name:<14}{x:>8.2f}{y:>8.2f}{sx:>8.2f}{sy:>8.2f}")
    print(f"{'box centre':<14}{framing.box_center[0]:>8.2f}{framing.box_center[1]:>8.2f}")
    print(f"{'box side':<14}{framing.box_side:>8.2f}")
    if args.write:
        FRAMING_PATH.write_text(
            json.dumps(
                {
                    "detector": args.detector,
                    "faces": int(len(faces)),
                    "found": int(used),
                    "source": Path(args.data).name,
                    "split": "Training",
                    "framing": framing.to_dict(),
                },
                indent=1,
            )
            + "\n"
        )
        print(f"\nwritten to {FRAMING_PATH}")


if __name__ == "__main__":
    main()
