"""What refitting batch-norm statistics buys each network, on PublicTest only (where choices are made).

    python -m bench.batchnorm MODEL_DIR [MODEL_DIR ...] [--data PATH] [--training-only]

For each model folder: PublicTest accuracy without TTA and with mirror TTA, as trained (running
statistics of augmented faces) and after :func:`fer_core.batchnorm.refit_batch_norm` on the faces it
was trained on, plain (Training and, for a model trained with them, its photo crops, as
``ship --refit-bn`` does; ``--training-only`` leaves the crops out). Ensemble folders are skipped:
ship their members.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from fer_core.artifacts import load_model
from fer_core.data import full_dataset_path, load_dataset
from fer_core.pipeline import training_photo_crops
from fer_core.predict import run_model, tta_views
from fer_core.preprocess import resize_faces


def accuracy(model, faces: np.ndarray, labels: np.ndarray, tta: str) -> float:
    views = tta_views(faces.astype(np.float32), tta)
    probabilities = sum(run_model(model, view) for view in views) / len(views)
    return float((probabilities.argmax(axis=1) == labels).mean())


def main() -> None:
    from fer_core.batchnorm import refit_batch_norm

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=full_dataset_path())
    parser.add_argument("--training-only", action="store_true", help="refit on Training without photo crops")
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("the full FER2013 is needed: set FER2013_CSV or pass --data")
    dataset = load_dataset(args.data)
    public = dataset.splits["PublicTest"]

    source = "Training" if args.training_only else "Training + photo crops"
    print(f"PublicTest ({len(public):,} faces); refit on {source}")
    print(f"{'model':<16}{'refit faces':>12}{'s':>6}{'plain':>9}{'-> refit':>10}{'flip':>9}{'-> refit':>10}")
    for path in args.models:
        loaded = load_model(path)
        if loaded.card["training"].get("members"):
            print(f"{loaded.name:<16} an ensemble: skipped")
            continue
        faces = resize_faces(public.images, loaded.input_size)
        before = [accuracy(loaded.model, faces, public.labels, tta) for tta in ("none", "flip")]
        training = [resize_faces(dataset.splits["Training"].images, loaded.input_size)]
        crops = None if args.training_only else training_photo_crops(dataset, loaded.config)
        if crops is not None:
            training.append(resize_faces(crops.images, loaded.input_size))
        training = np.concatenate(training)
        started = time.perf_counter()
        refit_batch_norm(loaded.model, training)
        seconds = time.perf_counter() - started
        after = [accuracy(loaded.model, faces, public.labels, tta) for tta in ("none", "flip")]
        print(
            f"{loaded.name:<16}{len(training):>12,}{seconds:>6.0f}{before[0]:>9.2%}{after[0]:>10.2%}"
            f"{before[1]:>9.2%}{after[1]:>10.2%}"
        )


if __name__ == "__main__":
    main()
