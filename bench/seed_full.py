"""The report's network and recipe (the ``seed`` preset) on the full FER2013: accuracy and wall time.

    python -m bench.seed_full [--out runs/seed-bench] [--install]

Trains on the Training rows, reports PublicTest and PrivateTest accuracy and per-emotion recall, and
with ``--install`` copies the model to ``models/default`` (the model that ships).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from fer_core.artifacts import DEFAULT_MODEL
from fer_core.data import full_dataset_path
from fer_core.emotions import EMOTIONS
from fer_core.models import preset_config
from fer_core.pipeline import train_model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/seed")
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--install", action="store_true", help="copy the model to models/default")
    args = parser.parse_args()
    data = full_dataset_path()
    if data is None:
        raise SystemExit("the full FER2013 is needed: set FER2013_CSV or place it in ../shared/data")

    started = time.monotonic()
    loaded, result = train_model(preset_config(args.preset), args.out, data=data, restart=True)
    wall = time.monotonic() - started
    metrics = loaded.card["metrics"]

    print(
        f"\n{args.preset} preset on {data.name}: {result.steps_done} steps, "
        f"{result.train_seconds:.0f} s training, {wall:.0f} s wall (read + Spark prepare + train + evaluate)"
    )
    print(f"{'split':<12}{'accuracy':>10}")
    for split in ("Training", "PublicTest", "PrivateTest"):
        print(f"{split:<12}{metrics[split]['accuracy']:>10.4f}")
    print(f"\n{'emotion':<10}{'PrivateTest recall':>20}{'precision':>11}")
    for name in EMOTIONS:
        row = metrics["PrivateTest"]["per_class"][name]
        print(f"{name:<10}{row['recall']:>20.4f}{row['precision']:>11.4f}")
    if args.install:
        shutil.rmtree(DEFAULT_MODEL, ignore_errors=True)
        shutil.copytree(Path(args.out) / "model", DEFAULT_MODEL)
        print(f"\ninstalled as {DEFAULT_MODEL}")


if __name__ == "__main__":
    main()
