"""The Spark data pipeline against a faithful re-creation of the report's per-row loops, same CSV, one run.

    python -m bench.pipeline [--data PATH] [--traced-baseline]

Both read the Kaggle CSV and produce the seed preset's training data (28 x 28 area resize, flip and
+/-10 degree rotation copies, disgust x4) and resized evaluation splits. The baseline is what the
2017 report did: parse every row in a Python loop on the driver, one face at a time.

Printed, all from this one run:

1. ``python -m fer_core prepare --preset seed`` as a user runs it (a new process, an empty cache, the
   Spark start included) against the baseline: the speed-up.
2. Where that time goes: each stage timed alone in this process, on another empty cache. Read and
   parse run in one Spark task, so parse is the difference between a job that stops after reading
   the lines and one that also parses them (neither writes anything).
3. The same pipeline with Spark already running, and a Parquet cache hit.

``--traced-baseline`` also times the baseline under ``tracemalloc``, as this bench did before: tracing
every allocation makes the per-row loops about eight times slower, so those ratios were too kind.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from fer_core.data import (
    SAMPLE_PATH,
    fingerprint,
    full_dataset_path,
    gzip_damage,
    load_dataset,
    read_lines,
    read_rows,
)
from fer_core.models import preset_config
from fer_core.preprocess import prepare, preprocess_faces

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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


def timed(function, *args):
    started = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - started


def fresh_cache() -> str:
    """An empty cache folder, removed when the bench ends."""
    folder = tempfile.mkdtemp(prefix="fer-bench-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def cli_prepare(data: Path) -> tuple[dict, float]:
    """``prepare --preset seed`` in a new process on an empty cache: what a user waits for."""
    env = {**os.environ, "FER_CACHE_DIR": fresh_cache()}
    command = [sys.executable, "-m", "fer_core", "prepare", "--preset", "seed", "--data", str(data), "--json"]
    completed, seconds = timed(
        lambda: subprocess.run(command, capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
    )
    if completed.returncode != 0:
        raise SystemExit(f"prepare failed ({completed.returncode}): {completed.stderr[-2000:]}")
    return json.loads(completed.stdout), seconds


def noop_job(frame) -> None:
    """Run a DataFrame to its end and write nothing."""
    frame.write.format("noop").mode("overwrite").save()


def stage_times(data: Path, config):
    """(stage, how it was measured, seconds) of the pipeline, each stage timed alone, in order; the
    seconds of reading and preparing with Spark running; the prepared faces."""
    import pyarrow as pa

    from fer_core.spark import get_spark

    os.environ["FER_CACHE_DIR"] = fresh_cache()
    stages = []
    spark, seconds = timed(get_spark)
    stages.append(("JVM start", "get_spark()", seconds))

    def count(batches):  # a Python stage that keeps nothing: starts the workers, takes the lines
        for batch in batches:
            yield pa.RecordBatch.from_arrays([pa.array([batch.num_rows])], ["rows"])

    warm_up = spark.range(1).mapInArrow(count, "rows long")
    stages.append(("first job (JVM warm-up, Python workers)", "a 1-row job", timed(noop_job, warm_up)[1]))
    checks = timed(lambda: (fingerprint(data), gzip_damage(data)))[1]
    stages.append(("fingerprint, .gz check (driver)", "alone", checks))
    read = timed(noop_job, read_lines(spark, data).mapInArrow(count, "rows long"))[1]
    stages.append(("read: decompress, split lines, to Python", "lines job", read))
    read_parse = timed(noop_job, read_rows(spark, data))[1]
    stages.append(("parse: pixel strings to uint8 (Arrow)", "rows job - lines job", read_parse - read))
    dataset, load = timed(lambda: load_dataset(data, use_cache=False))
    stages.append(
        ("write faces cache (Parquet), read to numpy", "load_dataset - above 3", load - checks - read_parse)
    )
    augment = timed(
        lambda: [
            preprocess_faces(faces.images, faces.labels, config, training=split == "Training")
            for split, faces in dataset.splits.items()
        ]
    )[1]
    prepared, prepare_seconds = timed(lambda: prepare(dataset, config, use_cache=False))
    stages.append(("augment/preprocess on Spark, write, to numpy", "prepare()", prepare_seconds))
    stages.append(("  of which augment CPU, numpy, 1 core", "alone", augment))
    return stages, load + prepare_seconds, prepared


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=full_dataset_path() or SAMPLE_PATH)
    parser.add_argument("--traced-baseline", action="store_true", help="also time it under tracemalloc")
    args = parser.parse_args()
    config = preset_config("seed").preprocess
    baseline_args = (args.data, config.size, config.rotation, config.oversample_disgust)

    (_, base_train_y, _, _), base_s = timed(per_row_baseline, *baseline_args)
    traced_s = None
    if args.traced_baseline:
        tracemalloc.start()
        traced_s = timed(per_row_baseline, *baseline_args)[1]
        tracemalloc.stop()
    shapes, cli_s = cli_prepare(args.data)
    stages, warm_s, prepared = stage_times(args.data, config)
    cached_s = timed(lambda: prepare(load_dataset(args.data), config))[1]

    train = prepared.splits["Training"]
    same = shapes["shapes"]["Training"][0] == len(train) == len(base_train_y) and np.array_equal(
        np.bincount(train.labels, minlength=7), np.bincount(base_train_y, minlength=7)
    )
    print(
        f"\ndata: {args.data} ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}); training "
        f"faces out: {len(train)} (baseline {len(base_train_y)}, same per-emotion counts: {same})\n"
    )
    print(f"{'pipeline':<64}{'seconds':>9}{'speed-up':>10}")
    rows = [
        ("report's per-row loops (baseline)", base_s),
        ("prepare --preset seed: new process, empty cache, Spark start", cli_s),
        ("same pipeline in this process, Spark running, empty cache", warm_s),
        ("same pipeline, Parquet cache hit", cached_s),
    ]
    if traced_s is not None:
        rows.insert(1, ("report's per-row loops under tracemalloc (old bench)", traced_s))
    for name, seconds in rows:
        print(f"{name:<64}{seconds:>9.1f}{base_s / seconds:>9.1f}x")

    print(f"\n{'stage (each timed alone, in order)':<46}{'measured as':<24}{'seconds':>9}{'share':>7}")
    total = sum(seconds for name, _, seconds in stages if not name.startswith(" "))
    for name, how, seconds in stages:
        print(f"{name:<46}{how:<24}{seconds:>9.1f}{seconds / total:>7.0%}")
    print(f"{'sum of the stages':<46}{'':<24}{total:>9.1f}")


if __name__ == "__main__":
    main()
