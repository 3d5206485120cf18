"""Disgust and fear: what moving the decision towards the rare emotions buys, without retraining.

    python -m bench.balance MODEL_DIR [--data PATH] [--tau 0.5]

Post-hoc logit adjustment (Menon et al., 2021): predict argmax(log p(y|x) - tau * log prior(y)), with
the prior counted on the Training rows; tau 0 is the model as trained, tau 1 aims at balanced recall.
The sweep over tau is printed for PublicTest only, where it would be chosen; PrivateTest is printed
for tau 0 and for the one ``--tau`` (read once, never to choose).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fer_core.artifacts import load_model
from fer_core.data import full_dataset_path, load_dataset
from fer_core.emotions import EMOTIONS
from fer_core.evaluate import evaluate
from fer_core.predict import predict_faces

TAUS = (0.0, 0.25, 0.5, 0.75, 1.0)


def adjusted(probabilities: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """Probabilities re-weighted by prior ** -tau and renormalised (same argmax as the adjusted logits)."""
    weighted = probabilities * prior**-tau
    return weighted / weighted.sum(axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path, default=full_dataset_path())
    parser.add_argument("--tau", type=float, default=0.5, help="the setting read on PrivateTest")
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("the full FER2013 is needed: set FER2013_CSV or pass --data")
    dataset = load_dataset(args.data)
    loaded = load_model(args.model)
    prior = np.bincount(dataset.splits["Training"].labels, minlength=len(EMOTIONS)) / len(
        dataset.splits["Training"]
    )
    rows = [("PublicTest", tau) for tau in TAUS] + [("PrivateTest", 0.0), ("PrivateTest", args.tau)]
    probabilities = {}
    disgust, fear = EMOTIONS.index("disgust"), EMOTIONS.index("fear")
    print(f"\n{args.model} (tta {loaded.tta}) on {args.data}\n")
    print(f"{'split':<13}{'tau':>5}{'accuracy':>10}{'mean recall':>13}{'disgust R':>11}{'disgust P':>11}"
          f"{'fear R':>8}{'fear P':>8}")  # fmt: skip
    for split, tau in rows:
        faces = dataset.splits[split]
        if split not in probabilities:
            probabilities[split] = predict_faces(loaded, faces.images)
        report = evaluate(faces.labels, adjusted(probabilities[split], prior, tau))
        table = report.per_class()
        d, f = table.iloc[disgust], table.iloc[fear]
        print(
            f"{split:<13}{tau:>5.2f}{report.accuracy:>10.2%}{table['recall'].mean():>13.2%}"
            f"{d['recall']:>11.2%}{d['precision']:>11.2%}{f['recall']:>8.2%}{f['precision']:>8.2%}"
        )


if __name__ == "__main__":
    main()
