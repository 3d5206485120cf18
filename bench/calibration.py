"""Calibration of the shipped models: expected calibration error before and after temperature scaling.

    python -m bench.calibration [MODEL ...] [--data PATH]

The temperature and the uncertain threshold come from each model's card (fitted on PublicTest by
``python -m fer_core ship``); this reads PrivateTest to report them, it chooses nothing. ECE is over
15 equal bins of the top-1 probability, with each model's own test-time augmentation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fer_core.artifacts import load_model
from fer_core.calibrate import expected_calibration_error
from fer_core.data import full_dataset_path, load_dataset
from fer_core.predict import predict_faces

MODELS = ("models/seed", "models/fast", "models/vgg", "models/default")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="*", type=Path, default=[Path(name) for name in MODELS])
    parser.add_argument("--data", type=Path, default=full_dataset_path())
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("the full FER2013 is needed: set FER2013_CSV or pass --data")
    private = load_dataset(args.data).splits["PrivateTest"]
    print(f"\nPrivateTest, {len(private):,} faces; ECE over 15 bins of the top-1 probability\n")
    header = (
        ("temperature", 12),
        ("ECE before", 12),
        ("ECE after", 11),
        ("uncertain", 11),
        ("acc. of those", 15),
    )
    print(f"{'model':<18}{'tta':<7}" + "".join(f"{name:>{width}}" for name, width in header))
    for path in args.models:
        loaded = load_model(path)
        raw = predict_faces(loaded, private.images, calibrated=False)
        calibrated = loaded.calibration.apply(raw)
        uncertain = calibrated.max(axis=1) < loaded.calibration.uncertain_below
        right = calibrated.argmax(axis=1) == private.labels
        print(
            f"{loaded.name:<18}{loaded.tta:<7}{loaded.calibration.temperature:>12.3f}"
            f"{expected_calibration_error(raw, private.labels):>12.4f}"
            f"{expected_calibration_error(calibrated, private.labels):>11.4f}"
            f"{uncertain.mean():>11.1%}{(right[uncertain].mean() if uncertain.any() else np.nan):>15.1%}"
        )


if __name__ == "__main__":
    main()
