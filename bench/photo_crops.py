"""Training faces as the photo path shows them to the network, as extra rows of a FER2013 CSV.

    python -m bench.photo_crops --faces 12000 --out runs/fer2013_photo_crops.csv [--data PATH] [--seed 123]

Each of ``--faces`` Training faces (a seeded random choice) is placed in a synthetic 640 x 480 photo
the way ``bench.photo_path`` places PublicTest faces (scaled, turned up to 15 degrees, shifted, on a
varied background), found by the default detector, levelled and cropped by the default alignment.
The output is a FER2013-layout CSV: every original row, plus one Training row per face found, with the
face's label. Training on it shows the network faces framed by the detector as well as FER2013's own
framing; PublicTest and PrivateTest are the original rows, untouched. (This is how the first probe
of that idea was run; training does the same on its own with ``--photo-crops N``, on the original data,
so that the model's card names FER2013 itself.)
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from fer_core.data import full_dataset_path, load_dataset
from fer_core.synthetic import photo_crops


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=full_dataset_path())
    parser.add_argument("--faces", type=int, default=12_000, help="Training faces to place (12,000)")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write")
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("the full FER2013 is needed: set FER2013_CSV or pass --data")
    dataset = load_dataset(args.data)
    started = time.perf_counter()
    crops, _ = photo_crops(dataset.splits["Training"], args.faces, args.seed)
    seconds = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["emotion", "pixels", "Usage"])
        rows = [(split, faces) for split, faces in dataset.splits.items()] + [("Training", crops)]
        for split, faces in rows:
            for image, label in zip(faces.images, faces.labels, strict=True):
                writer.writerow([int(label), " ".join(map(str, image.ravel())), split])
    print(
        f"{args.out}: {len(crops):,} photo crops of {args.faces:,} Training faces placed "
        f"({len(crops) / args.faces:.1%} found, {seconds / args.faces * 1000:.0f} ms a face), "
        f"plus the {sum(len(f) for f in dataset.splits.values()):,} original rows"
    )


if __name__ == "__main__":
    main()
