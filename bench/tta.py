"""Choose test-time augmentation on PublicTest: accuracy and cost of each mode and crop shift.

    python -m bench.tta MODEL_DIR [MODEL_DIR ...] [--data PATH] [--split PublicTest] [--ensemble]
        [--subsets] [--shifts 1,2,3,4]

With ``--ensemble`` the models are also measured together, their probabilities averaged (what
``python -m fer_core ship`` saves as one ensemble model); with ``--subsets`` also every group of two
or more of them, from the same predictions (each network predicts each view once).

Only PublicTest is read by default: this is where the TTA setting of a model is chosen
(PrivateTest is read once, for the finished model, by `python -m bench.models`). Time is the wall time of
the predictions, also as a ratio to plain prediction in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from fer_core.artifacts import load_model
from fer_core.data import full_dataset_path, load_dataset
from fer_core.evaluate import evaluate
from fer_core.predict import tta_views
from fer_core.preprocess import resize_faces

SHIFTS = (1, 2, 3, 4)


def short_name(path: Path) -> str:
    """A model folder's name (a run's ``RUN/model`` folder by its run)."""
    return path.parent.name if path.name == "model" else path.name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=full_dataset_path())
    parser.add_argument("--split", default="PublicTest")
    parser.add_argument("--ensemble", action="store_true", help="also the average of all the models")
    parser.add_argument("--subsets", action="store_true", help="also every group of two or more models")
    parser.add_argument(
        "--shifts",
        type=lambda text: [int(value) for value in text.split(",")],
        default=list(SHIFTS),
        help="crop shifts in pixels (default: %(default)s)",
    )
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("the full FER2013 is needed: set FER2013_CSV or pass --data")
    faces = load_dataset(args.data).splits[args.split]

    print(f"\n{args.split} of {args.data}: {len(faces):,} faces\n")
    print(f"{'model':<36}{'tta':<16}{'views':>6}{'accuracy':>10}{'mean recall':>13}{'seconds':>9}{'x':>7}")
    modes = [("none", 0), ("flip", 0)] + [("crops", shift) for shift in args.shifts]
    results = {}  # (model, mode, shift) -> (probabilities, seconds)
    for path in args.models:
        loaded = load_model(path)
        inputs = resize_faces(faces.images, loaded.input_size)
        loaded.model.predict(inputs[:256], batch_size=256, verbose=0)  # warm-up, not timed
        for mode, shift in modes:
            started = time.perf_counter()
            views = tta_views(inputs, mode, shift=shift or 2)
            outputs = loaded.model.predict(np.concatenate(views), batch_size=256, verbose=0)
            probabilities = outputs.reshape(len(views), len(inputs), -1).mean(axis=0)
            results[str(path), mode, shift] = probabilities, time.perf_counter() - started
    sizes = range(2, len(args.models) + 1) if args.subsets else [len(args.models)] if args.ensemble else []
    groups = [group for size in sizes if size > 1 for group in itertools.combinations(args.models, size)]
    for group in groups:
        every = len(group) == len(args.models)
        name = "ensemble" if every else " + ".join(short_name(path) for path in group)
        for mode, shift in modes:
            members = [results[str(path), mode, shift] for path in group]
            results[name, mode, shift] = (
                np.mean([probabilities for probabilities, _ in members], axis=0),
                sum(seconds for _, seconds in members),
            )
    for name in dict.fromkeys(name for name, _, _ in results):
        base = results[name, "none", 0][1]
        for mode, shift in modes:
            probabilities, seconds = results[name, mode, shift]
            report = evaluate(faces.labels, probabilities)
            label = f"{mode} {shift} px" if shift else mode
            views = len(tta_views(faces.images[:1], mode))
            recall = report.per_class()["recall"].mean()
            print(
                f"{name:<36}{label:<16}{views:>6}{report.accuracy:>10.2%}{recall:>13.2%}"
                f"{seconds:>9.1f}{seconds / base:>6.1f}x"
            )


if __name__ == "__main__":
    main()
