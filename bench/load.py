"""Photo latency under load: sessions predicting photos over and over while a training runs.

    python -m bench.load [--sessions 2] [--rounds 10] [--steps 2000] [--photos tests/data/photos]

First one session alone (idle), then ``--sessions`` threads calling the prediction core at once while
a tiny ``python -m fer_core train`` runs as a background process, as on a dashboard server where
visitors predict while another trains. Each answer is checked against the idle answer for its photo
(no result mixed up between sessions). Latency is the wall time of ``analyze_image`` per photo.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from fer_core.artifacts import load_model
from fer_core.predict import analyze_image

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ("single_face.jpg", "multi_face.jpg")
TRAIN = ["--preset", "seed", "--input-size", "48", "--no-flip", "--rotation", "0",
         "--oversample-disgust", "1", "--max-train-faces", "300", "--batch-size", "16",
         "--eval-every", "100"]  # fmt: skip


def _same(result, reference) -> bool:
    return [face.box for face in result.faces] == [face.box for face in reference.faces] and all(
        np.allclose(face.probabilities, ref.probabilities, atol=1e-4)
        for face, ref in zip(result.faces, reference.faces, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10, help="photos each session predicts")
    parser.add_argument("--steps", type=int, default=2000, help="steps of the background training")
    parser.add_argument("--photos", type=Path, default=ROOT / "tests" / "data" / "photos")
    args = parser.parse_args()

    loaded = load_model()
    contents = {name: (args.photos / name).read_bytes() for name in PHOTOS}
    references = {name: analyze_image(content, loaded, name=name) for name, content in contents.items()}
    idle = []
    for index in range(args.rounds):
        photo = PHOTOS[index % len(PHOTOS)]
        started = time.perf_counter()
        analyze_image(contents[photo], loaded, name=photo)
        idle.append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as folder:
        training = subprocess.Popen(
            [sys.executable, "-m", "fer_core", "train", "--out", f"{folder}/run", "--steps", str(args.steps),
             *TRAIN],
            env={**os.environ, "FER_CACHE_DIR": f"{folder}/cache"}, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        while not Path(folder, "run", "progress.json").exists() and training.poll() is None:
            time.sleep(0.2)  # until the training runs its steps (after its data is read)
        loaded_latency, overlapped, wrong = [], [], []

        def session(number: int) -> None:
            photo = PHOTOS[number % len(PHOTOS)]
            for _ in range(args.rounds):
                started = time.perf_counter()
                result = analyze_image(contents[photo], loaded, name=f"{number}/{photo}")
                loaded_latency.append(time.perf_counter() - started)
                overlapped.append(training.poll() is None)
                if not _same(result, references[photo]) or result.name != f"{number}/{photo}":
                    wrong.append(result.name)

        threads = [threading.Thread(target=session, args=(number,)) for number in range(args.sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        training.wait()

    print(f"{'condition':<34}{'photos':>7}{'median s':>10}{'p95 s':>8}{'max s':>8}")
    for name, seconds in (
        ("1 session, idle", idle),
        (f"{args.sessions} sessions + 1 training", loaded_latency),
    ):
        print(
            f"{name:<34}{len(seconds):>7}{np.median(seconds):>10.2f}{np.percentile(seconds, 95):>8.2f}"
            f"{max(seconds):>8.2f}"
        )
    print(
        f"answered {len(loaded_latency)}/{args.sessions * args.rounds}, mixed up {len(wrong)}, "
        f"during training {sum(overlapped)}, training exit status {training.returncode}"
    )


if __name__ == "__main__":
    main()
