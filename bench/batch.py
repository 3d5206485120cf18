"""Batch inference on Spark: faces per second on local[1] and local[2], and time against input size.

    python -m bench.batch [--sets 48] [--repeats 2] [--model models/default] [--detector retinaface]

The input is a folder of real photos (the four of tests/data/photos: one face, five faces, a group photo,
no face) copied ``--sets`` times (1x), twice that (2x) and four times (4x), scored with
``fer_core.batch.run_batch`` into Parquet. Each master first scores one set so that its Python workers
have imported TensorFlow and loaded the model (once per worker); the timings are of the runs after
that: the steady state a long batch spends nearly all its time in. The cold first run is shown too.
CPU s is what Spark's JVM and its Python workers used during a run (from /proc): on a machine that
other work shares, faces per CPU second says what the same work costs on cores of its own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from fer_core.batch import BatchConfig, run_batch
from fer_core.spark import get_spark

PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "data" / "photos"
NAMES = ("single_face.jpg", "multi_face.jpg", "group_solvay_1927.jpg", "no_face.jpg")


def build_folder(root: Path, sets: int) -> Path:
    """``sets`` copies of the test photos, one subfolder per copy."""
    for index in range(sets):
        folder = root / f"set{index:04d}"
        folder.mkdir(parents=True)
        for name in NAMES:
            shutil.copy(PHOTOS / name, folder / name)
    return root


def _tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) used so far by the live processes under ``root`` (the JVM: its
    Python daemon and workers), read from /proc."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        pid = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, pending = 0.0, [root]
    while pending:
        pid = pending.pop()
        total += times.get(pid, 0.0)
        pending += children.get(pid, [])
    return total


def timed(source: Path, out: Path, config: BatchConfig, master: str) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds of Spark's JVM and Python workers, photos and faces of one run."""
    shutil.rmtree(out, ignore_errors=True)
    jvm = get_spark(master).sparkContext._gateway.proc.pid
    cpu, started = _tree_cpu_seconds(jvm), time.monotonic()
    summary = run_batch(source, out, config, spark_master=master)
    seconds = time.monotonic() - started
    return seconds, _tree_cpu_seconds(jvm) - cpu, summary.images, summary.faces


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", type=int, default=48, help="copies of the 4 photos in the 1x input (48)")
    parser.add_argument("--model", help="model folder (default: the batch path's, models/lite)")
    parser.add_argument("--detector", help="face detector (default: fer_core.predict's)")
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed runs of each input; the best is shown (2)"
    )
    args = parser.parse_args()
    config = BatchConfig(model=args.model, detector=args.detector)

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as temporary:
        work = Path(temporary)
        warm = build_folder(work / "warm", 1)
        inputs = {copies: build_folder(work / f"x{copies}", args.sets * copies) for copies in (1, 2, 4)}
        out = work / "out"
        print(f"{os.cpu_count()} cores; {_load()} at the start\n")

        by_master = []
        for master in ("local[1]", "local[2]"):
            get_spark(master)  # a new session (and new Python workers) for each master
            cold = timed(warm, out, config, master)[0]
            runs = [timed(inputs[1], out, config, master) for _ in range(args.repeats)]
            by_master.append((master, cold, min(runs)))
        by_size = [(copies, min(timed(inputs[copies], out, config, "local[2]") for _ in range(args.repeats)))
                   for copies in (1, 2, 4)]  # fmt: skip

    print("best of", args.repeats, "runs; CPU s: used by Spark's JVM and Python workers during the run\n")
    print(f"{'master':<10}{'cold s':>8}{'photos':>8}{'faces':>7}{'seconds':>9}{'faces/s':>9}{'speed-up':>10}"
          f"{'CPU s':>7}{'faces/CPU s':>13}")  # fmt: skip
    base = None
    for master, cold, (seconds, cpu, photos, faces) in by_master:
        rate = faces / seconds
        base = base or rate
        print(f"{master:<10}{cold:>8.1f}{photos:>8}{faces:>7}{seconds:>9.1f}{rate:>9.2f}{rate / base:>9.2f}x"
              f"{cpu:>7.1f}{faces / cpu:>13.2f}")  # fmt: skip
    print(f"\n{'input (local[2])':<18}{'photos':>8}{'faces':>7}{'seconds':>9}{'vs linear':>10}{'faces/s':>9}"
          f"{'CPU s':>7}")  # fmt: skip
    one = by_size[0][1][0]
    for copies, (seconds, cpu, photos, faces) in by_size:
        print(f"{f'{copies}x':<18}{photos:>8}{faces:>7}{seconds:>9.1f}{seconds / (one * copies):>10.2f}"
              f"{faces / seconds:>9.2f}{cpu:>7.1f}")  # fmt: skip
    print(f"\n{_load()} at the end (other work on the machine shares its cores)")


if __name__ == "__main__":
    main()
