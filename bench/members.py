"""Choose an ensemble's members, and which of them get their batch norm refitted, on PublicTest only.

    python -m bench.members MODEL_DIR [MODEL_DIR ...] [--data PATH] [--seeds 0,1,2] [--top 15]
                            [--max-members N]

Each network predicts with its mirror TTA, as trained (p) and with its batch-norm statistics refitted
on its training faces (r, what ``ship --refit-bn NAME`` does), on the PublicTest faces directly and
on the same faces placed in synthetic photos and read through the photo path (detect, align, crop;
:mod:`bench.photo_path`, default alignment; one placement per seed, a missed face counted wrong).
Then every group of the networks, each member p or r, from those predictions: accuracy directly, on
the photos (mean over the seeds), and the photo path's gap to direct per seed. The issue "Real
photos" bounds that gap to 1.5 points, so the table lists the best groups overall and the best
within the bound. ``--max-members`` keeps to groups that fit the folder-size bound (four networks
at float32, six with their weights rounded to float16: ``ship --weights-precision``). The placements
and each network's predictions are cached in the data cache.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from fer_core.artifacts import load_model, sha256_file
from fer_core.data import cache_dir, full_dataset_path, load_dataset
from fer_core.emotions import FACE_SIZE
from fer_core.faces import DEFAULT_ALIGNMENT, align_faces, detect_faces
from fer_core.pipeline import _refit_batch_norm
from fer_core.predict import predict_faces
from fer_core.synthetic import nearest, place

GAP_BOUND = 1.5  # points: the photo path against the faces themselves (issue "Real photos")


def photo_crops(faces: np.ndarray, seed: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The faces placed in photos (seed) and cropped by the photo path; which the detector found."""
    path = cache_dir() / f"bench-members-crops-{key}-{seed}.npz"
    if not path.is_file():
        rng = np.random.default_rng(seed)
        crops, found = np.zeros((len(faces), FACE_SIZE, FACE_SIZE), np.uint8), np.zeros(len(faces), bool)
        for index, face in enumerate(faces):
            photo, center, _ = place(face, rng)
            detection = nearest(detect_faces(photo), center)
            if detection is not None:
                found[index] = True
                crops[index] = align_faces(photo, [detection], method=DEFAULT_ALIGNMENT)[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, crops=crops, found=found)
    with np.load(path) as stored:
        return stored["crops"], stored["found"]


def member_predictions(folder: Path, dataset, sets: dict[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
    """``{p|r}_{set}``: the network's mirror-TTA probabilities on each set, plain and refitted."""
    weights = sha256_file(folder / "model.keras")[:16]
    path = cache_dir() / f"bench-members-{weights}-{key}.npz"
    if not path.is_file():
        loaded = load_model(folder, fast=False)
        predictions = {}
        for variant in ("p", "r"):
            if variant == "r":
                _refit_batch_norm(loaded, dataset)
            for name, faces in sets.items():
                predictions[f"{variant}_{name}"] = predict_faces(loaded, faces, tta="flip", calibrated=False)
        np.savez(path, **predictions)
    with np.load(path) as stored:
        return dict(stored)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=full_dataset_path())
    parser.add_argument("--seeds", type=lambda text: [int(v) for v in text.split(",")], default=[0, 1, 2])
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--max-members", type=int, default=0, help="the most networks a group may have (0: any number)"
    )
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("the full FER2013 is needed: set FER2013_CSV or pass --data")
    dataset = load_dataset(args.data)
    public = dataset.splits["PublicTest"]
    key = dataset.cache_key[:16]
    sets, found = {"direct": public.images}, {}
    for seed in args.seeds:
        sets[f"s{seed}"], found[seed] = photo_crops(public.images, seed, key)
    # A run's model folder is RUN/model: name it for its run.
    names = [folder.parent.name if folder.name == "model" else folder.name for folder in args.models]
    predictions = {
        name: member_predictions(folder, dataset, sets, key)
        for name, folder in zip(names, args.models, strict=True)
    }

    rows = []
    for size in range(1, (args.max_members or len(names)) + 1):
        for group in itertools.combinations(names, size):
            for variants in itertools.product("pr", repeat=size):

                def right(set_name: str, group=group, variants=variants) -> np.ndarray:
                    probabilities = sum(
                        predictions[name][f"{variant}_{set_name}"]
                        for name, variant in zip(group, variants, strict=True)
                    )
                    return probabilities.argmax(axis=1) == public.labels

                direct = right("direct").mean()
                photos = [(right(f"s{seed}") & found[seed]).mean() for seed in args.seeds]
                gaps = [(photo - direct) * 100 for photo in photos]
                label = " + ".join(f"{name}:{variant}" for name, variant in zip(group, variants, strict=True))
                rows.append((direct, float(np.mean(photos)), gaps, label))

    print(f"\nPublicTest of {args.data}: {len(public):,} faces; photo placements seeds {args.seeds}")
    print(f"found by the detector: {', '.join(f'{found[seed].mean():.2%}' for seed in args.seeds)}")
    header = f"{'members (p as trained, r batch norm refitted)':<60}{'direct':>8}{'photos':>8}"
    header += "".join(f"{'gap s' + str(seed):>9}" for seed in args.seeds)
    within = [row for row in rows if min(row[2]) >= -GAP_BOUND]
    for title, table in (("best overall", rows), (f"best with every gap within {GAP_BOUND} points", within)):
        print(f"\n{title}\n{header}")
        for direct, photos, gaps, label in sorted(table, reverse=True)[: args.top]:
            print(f"{label:<60}{direct:>8.2%}{photos:>8.2%}" + "".join(f"{gap:>+9.2f}" for gap in gaps))


if __name__ == "__main__":
    main()
