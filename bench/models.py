"""Compare trained models: size, load time, training cost, and accuracy with each test-time augmentation.

    python -m bench.models MODEL_DIR [MODEL_DIR ...] [--data PATH]

Accuracy is computed here on the full FER2013 (PublicTest and PrivateTest; no TTA, mirror, mirror and
shifted crops), not read from the cards; the training cost comes from each model's card.
Load time is the median of three loads, also as a ratio to the first model's.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from fer_core.artifacts import MODEL_FILE, load_model
from fer_core.config import TTA_MODES
from fer_core.data import full_dataset_path, load_dataset
from fer_core.emotions import EMOTIONS
from fer_core.pipeline import evaluate_model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=full_dataset_path())
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("the full FER2013 is needed: set FER2013_CSV or pass --data")
    dataset = load_dataset(args.data)

    rows, recalls = [], {}
    for path in args.models:
        loads = []
        for _ in range(3):
            started = time.perf_counter()
            loaded = load_model(path)
            loads.append(time.perf_counter() - started)
        card = loaded.card
        scores = {
            (split, tta): evaluate_model(loaded, dataset, split, tta=tta)
            for split in ("PublicTest", "PrivateTest")
            for tta in TTA_MODES
        }
        recalls[path] = scores["PrivateTest", loaded.tta].per_class()["recall"], loaded.tta
        training = card["training"]
        images = training["steps"] * card["config"]["batch_size"]
        rows.append(
            (
                f"{path}",  # machine: see the card
                card["preset"],
                loaded.model.count_params(),
                (path / MODEL_FILE).stat().st_size / 2**20,
                statistics.median(loads),
                training["seconds"] / 60,
                images / training["seconds"],
                loaded.tta,
                *(
                    scores[split, tta].accuracy
                    for split in ("PublicTest", "PrivateTest")
                    for tta in TTA_MODES
                ),
            )
        )

    base_load = rows[0][4]
    print(f"\ndata: {args.data}; training minutes and images/s come from each model's card")
    print("accuracy per split and test-time augmentation (none, flip, crops); tta: the model's own\n")
    header = ("model", "preset", "params", "MB", "load s", "load x", "train min", "img/s", "tta")
    header += tuple(f"{split[:-4]} {tta}" for split in ("PublicTest", "PrivateTest") for tta in TTA_MODES)
    print(f"{header[0]:<28}{header[1]:<7}" + "".join(f"{h:>10}" for h in header[2:8]) + "".join(
        f"{h:>15}" if h.startswith("Pri") else f"{h:>14}" if h.startswith("Pub") else f"{h:>7}"
        for h in header[8:]
    ))  # fmt: skip
    for name, preset, params, size, load, minutes, speed, tta, *accuracies in rows:
        print(
            f"{name:<28}{preset:<7}{params:>10,}{size:>10.1f}{load:>10.2f}{load / base_load:>9.1f}x"
            f"{minutes:>10.1f}{speed:>10.0f}{tta:>7}"
            + "".join(f"{value:>14.2%}" for value in accuracies[:3])
            + "".join(f"{value:>15.2%}" for value in accuracies[3:])
        )
    print(
        f"\nPrivateTest recall per emotion (with the model's own tta)\n{'model':<28}{'tta':<7}"
        + "".join(f"{name:>10}" for name in EMOTIONS)
    )
    for path, (recall, tta) in recalls.items():
        print(f"{str(path):<28}{tta:<7}" + "".join(f"{value:>10.2%}" for value in recall))


if __name__ == "__main__":
    main()
