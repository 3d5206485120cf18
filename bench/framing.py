"""Learn where FER2013's faces sit in their crops, as the face detector sees them, and ship it.

    python -m bench.framing [--data PATH] [--faces 3000] [--detector retinaface] [--write]

Each Training face is put into a synthetic photo the way ``bench.photo_path`` does (enlarged to
96-220 px, turned by up to 15 degrees, its surroundings carried on into a varied background), so the
detector meets it as it meets faces in photos: at photo sizes, tilted, with context. Where the
detector's landmarks and box fall in the face's own 48 x 48 pixels is known exactly from the
placement; their medians are the framing. For comparison it also fits the framing with each face
alone, enlarged 4x on a plain canvas (:func:`fer_core.faces.fit_framing`). The slope of the eye line in
the face's own pixels is the tilt FER2013's faces have (as the detector sees it in photos); against
the photos' own turns (uniform, up to :data:`fer_core.synthetic.MAX_TURN` degrees) it gives the part of
a measured slope that is the photo's turn, ``level`` = var(turn) / (var(turn) + var(tilt)), the
least-squares estimate that ``partly_levelled`` alignment turns back. ``--write`` stores the
photo framing in ``fer_core/framing.json``, which :func:`fer_core.faces.align_faces` uses. Training rows
only: the held-out splits stay out of every choice.
"""

from __future__ import annotations

import argparse
import dataclasses
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
    Detection,
    detect_faces,
    eye_line_angle,
    fit_framing,
    framing_from,
)
from fer_core.synthetic import MAX_TURN, nearest, place


def in_face_pixels(detection: Detection, to_face: np.ndarray) -> Detection:
    """A detection in a photo mapped into the pixels of the face placed there (2 x 3 ``to_face``):
    landmarks and box centre moved, box side scaled (the box stays square, as the framing keeps
    only its centre and side)."""
    apply = lambda points: points @ to_face[:, :2].T + to_face[:, 2]  # noqa: E731
    x, y, w, h = detection.box
    center = apply(np.array([[x + w / 2, y + h / 2]]))[0]
    side = (w + h) / 2 * float(np.hypot(*to_face[:, 0]))
    box = (center[0] - side / 2, center[1] - side / 2, side, side)
    return Detection(box, detection.score, apply(detection.landmarks).astype(np.float32))


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
    detections = []
    for face in faces:
        photo, center, to_face = place(face, rng)
        found = nearest(detect_faces(photo, args.detector, second_look=False), center)
        detections.append(
            None if found is None or found.landmarks is None else in_face_pixels(found, to_face)
        )
    framing, used = framing_from(detections)
    tilts = np.array([eye_line_angle(d.landmarks) for d in detections if d is not None])
    turn_variance = MAX_TURN**2 / 3  # of a uniform turn in [-MAX_TURN, MAX_TURN]
    level = turn_variance / (turn_variance + tilts.var())
    framing = dataclasses.replace(framing, level=level)
    seconds = time.perf_counter() - started
    alone, alone_used = fit_framing(faces, args.detector)
    spread = np.stack([d.landmarks for d in detections if d is not None]).std(axis=0)
    print(
        f"\n{args.detector} on {len(faces):,} Training faces placed in photos: a face in {used:,} "
        f"({used / len(faces):.1%}), {seconds:.0f} s; alone on a plain canvas: in {alone_used:,}\n"
    )
    print(f"{'':<14}{'in photos':>16}{'':>16}{'alone':>16}   (pixels of the 48 x 48 crop)")
    print(f"{'landmark':<14}{'x':>8}{'y':>8}{'sd x':>8}{'sd y':>8}{'x':>8}{'y':>8}")
    for name, (x, y), (sx, sy), (ax, ay) in zip(
        LANDMARKS, framing.landmarks, spread, alone.landmarks, strict=True
    ):
        print(f"{name:<14}{x:>8.2f}{y:>8.2f}{sx:>8.2f}{sy:>8.2f}{ax:>8.2f}{ay:>8.2f}")
    print(
        f"{'box centre':<14}{framing.box_center[0]:>8.2f}{framing.box_center[1]:>8.2f}{'':>16}"
        f"{alone.box_center[0]:>8.2f}{alone.box_center[1]:>8.2f}"
    )
    print(f"{'box side':<14}{framing.box_side:>8.2f}{'':>24}{alone.box_side:>8.2f}")
    quartiles = np.percentile(np.abs(tilts), [50, 90])
    print(
        f"\ntilt of the eye line in the faces' own pixels: sd {tilts.std():.1f} degrees, |tilt| median "
        f"{quartiles[0]:.1f}, 90th percentile {quartiles[1]:.1f}; photos turned by up to {MAX_TURN:.0f}: "
        f"level {level:.3f}"
    )
    if args.write:
        FRAMING_PATH.write_text(
            json.dumps(
                {
                    "detector": args.detector,
                    "faces": int(len(faces)),
                    "found": int(used),
                    "source": Path(args.data).name,
                    "split": "Training",
                    "context": "placed in synthetic photos (bench.photo_path), seed " + str(args.seed),
                    "framing": framing.to_dict(),
                },
                indent=1,
            )
            + "\n"
        )
        print(f"\nwritten to {FRAMING_PATH}")


if __name__ == "__main__":
    main()
