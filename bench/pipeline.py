"""The Spark data pipeline against a faithful re-creation of the report's per-row loops, same CSV, one run.

    python -m bench.pipeline [--data PATH] [--rows N]

Both read the Kaggle CSV and produce the seed preset's training data (28 x 28 area resize, flip and
+/-10 degree rotation copies, disgust x4) and resized evaluation splits. The baseline is what the
2017 report did: parse every row in a Python loop on the driver, one face at a time. The Spark side
runs without its Parquet cache (``use_cache=False``); a second timing shows the cached read.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from fer_core.data import SAMPLE_PATH, full_dataset_path, load_dataset
from fer_core.models import preset_config
from fer_core.preprocess import prepare


def per_row_baseline(path: Path, size: int, angle: float, disgust_copies: int):
    """The report's way: a Python loop over CSV rows, each face parsed, resized and copied alone."""
    import cv2

    opener = gzip.open if path.suffix == ".gz" else open
    train_x, train_y, test_x, test_y = [], [], [], []
    with opener(path, "rt") as stream:
        reader = csv.reader(stream)
        next(reader)
        for row in reader:
            if len(row) < 3:
                continue
            emotion, pixels, usage = int(row[0]), row[1], row[2]
            face = np.array([int(p) for p in pixels.split(" ")], dtype=np.uint8).reshape(48, 48)
            face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
            if usage != "Training":
                test_x.append(face)
                test_y.append(emotion)
                continue
            centre = (size / 2 - 0.5, size / 2 - 0.5)
            copies = [face, cv2.flip(face, 1)]
            for degrees in (angle, -angle):
                matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
                copies.append(cv2.warpAffine(face, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE))
            for _ in range(disgust_copies if emotion == 1 else 1):
                for copy in copies:
                    train_x.append(copy)
                    train_y.append(emotion)
    return np.array(train_x), np.array(train_y), np.array(test_x), np.array(test_y)


def timed(function):
    tracemalloc.start()
    started = time.perf_counter()
    value = function()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return value, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=full_dataset_path() or SAMPLE_PATH)
    args = parser.parse_args()
    config = preset_config("seed").preprocess
    os.environ["FER_CACHE_DIR"] = tempfile.mkdtemp(prefix="fer-bench-")

    from fer_core.spark import get_spark

    get_spark()  # start Spark before timing: the JVM start is a one-off, not pipeline work

    (base_train_x, base_train_y, _, _), base_s, base_peak = timed(
        lambda: per_row_baseline(args.data, config.size, config.rotation, config.oversample_disgust)
    )

    def spark_pipeline():
        dataset = load_dataset(args.data, use_cache=False)
        return prepare(dataset, config, use_cache=False)

    prepared, spark_s, spark_peak = timed(spark_pipeline)
    _, cached_s, _ = timed(lambda: prepare(load_dataset(args.data), config))

    train = prepared.splits["Training"]
    same = len(train) == len(base_train_y) and np.array_equal(
        np.bincount(train.labels, minlength=7), np.bincount(base_train_y, minlength=7)
    )
    print(
        f"\ndata: {args.data} ({os.cpu_count()} cores); training faces out: {len(train)} "
        f"(baseline {len(base_train_y)}, same per-emotion counts: {same})\n"
    )
    print(f"{'pipeline':<38}{'seconds':>9}{'speed-up':>10}{'driver peak MB':>16}")
    rows = [
        ("report's per-row loops (baseline)", base_s, base_peak),
        ("Spark mapInPandas, no cache", spark_s, spark_peak),
        ("Spark pipeline, Parquet cache hit", cached_s, None),
    ]
    for name, seconds, peak in rows:
        peak_text = f"{peak / 2**20:>16.0f}" if peak is not None else f"{'-':>16}"
        print(f"{name:<38}{seconds:>9.1f}{base_s / seconds:>9.1f}x{peak_text}")


if __name__ == "__main__":
    main()
