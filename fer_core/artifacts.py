"""Saved models: one Keras file plus its model card (label order, preprocessing, settings, metrics)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_core.config import TrainConfig
from fer_core.data import PROJECT_ROOT
from fer_core.emotions import EMOTIONS

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
MODELS_DIR = PROJECT_ROOT / "models"
RUNS_ENV = "FER_RUNS_DIR"
DEFAULT_MODEL = MODELS_DIR / "default"
MODEL_ENV = "FER_MODEL"


class ModelError(ValueError):
    """A model folder that is missing, damaged or made for other labels or preprocessing."""


@dataclass(frozen=True)
class LoadedModel:
    """A Keras model with its card; ``model`` maps uint8 faces (N, size, size) to probabilities (N, 7)."""

    model: Any
    card: dict[str, Any]
    path: Path

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.card["config"])

    @property
    def input_size(self) -> int:
        return int(self.card["preprocessing"]["input_size"])

    @property
    def tta(self) -> str:
        """The test-time augmentation the model predicts with unless told otherwise."""
        return self.card["preprocessing"].get("tta", "none")

    @property
    def name(self) -> str:
        return self.card.get("name") or self.path.name

    def accuracy(self, split: str = "PrivateTest") -> float | None:
        metrics = self.card.get("metrics", {}).get(split)
        return metrics["accuracy"] if metrics else None


def runs_dir() -> Path:
    """Where dashboard and CLI runs are trained: ``$FER_RUNS_DIR`` or ``runs/`` in the project."""
    return Path(os.environ.get(RUNS_ENV) or PROJECT_ROOT / "runs")


def default_model_path() -> Path:
    """``$FER_MODEL`` if set, else the model that ships in ``models/default``."""
    return Path(os.environ.get(MODEL_ENV) or DEFAULT_MODEL)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import keras
    import numpy
    import tensorflow

    return {
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def machine_description() -> str:
    return f"{platform.machine()} CPU, {os.cpu_count()} cores ({platform.system()})"


def make_card(
    *, name: str, config: TrainConfig, dataset, metrics: dict[str, dict], training: dict[str, Any]
) -> dict[str, Any]:
    """The model card: everything needed to check, reproduce and describe a trained model."""
    return {
        "format": FORMAT_VERSION,
        "name": name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "emotions": list(EMOTIONS),
        "preset": config.preset,
        "config": config.to_dict(),
        "preprocessing": {
            "input_size": config.input_size,
            "resize": "area",
            "normalization": config.normalization,
            "tta": config.tta,
        },
        "data": {
            "source": Path(dataset.source).name,
            "fingerprint": dataset.fingerprint,
            "rows": {split: len(faces) for split, faces in dataset.splits.items()},
            "rejected": dataset.rejects,
        },
        "metrics": metrics,
        "training": {**training, "machine": machine_description()},
        "versions": library_versions(),
    }


def save_model(model, directory: str | Path, card: dict[str, Any]) -> Path:
    """Write ``model.keras`` and ``card.json`` (with the weights' sha256) into ``directory``."""
    import keras

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if getattr(model, "optimizer", None) is not None:
        # Ship the network alone: the optimizer's state would triple the file for no use at prediction.
        inference = keras.Model.from_config(model.get_config())  # uncompiled, unlike clone_model
        inference.set_weights(model.get_weights())
        model = inference
    model.save(directory / MODEL_FILE)
    card = {**card, "weights_sha256": sha256_file(directory / MODEL_FILE)}
    (directory / CARD_FILE).write_text(json.dumps(card, indent=1))
    (directory / "README.md").write_text(card_markdown(card))
    return directory


def card_markdown(card: dict[str, Any]) -> str:
    """The model card for people: what the model is, how it was trained, how good it is per emotion."""
    training, data = card["training"], card["data"]
    lines = [
        f"# Model card: {card['name']} (preset `{card['preset']}`)",
        "",
        f"- Created {card['created']}; input {card['preprocessing']['input_size']} x "
        f"{card['preprocessing']['input_size']} gray, area resize, {card['preprocessing']['normalization']} "
        "normalisation; outputs the probabilities of " + ", ".join(card["emotions"]) + ".",
        f"- Trained on the Training rows of `{data['source']}` (sha256 `{data['fingerprint'][:16]}…`): "
        f"{training['steps']:,} steps in {training['seconds']:,.0f} s on {training['machine']}.",
        *(
            [
                f"- An ensemble: the average of {len(training['members'])} networks, "
                + ", ".join(f"`{member['name']}`" for member in training["members"])
                + "."
            ]
            if training.get("members")
            else []
        ),
        *(
            [
                "- Its training runs (a warm restart continues from the weights of the run before it): "
                + "; ".join(
                    f"{run['name']} {run['steps']:,} steps in {run['seconds']:,.0f} s"
                    for run in training["lineage"]
                )
                + "."
            ]
            if len(training.get("lineage", [])) > 1
            else []
        ),
        "- Predicts with test-time augmentation: "
        + {
            "none": "none",
            "flip": "the face and its mirror image (2 views)",
            "crops": "the face, four crops shifted by a few pixels, and their mirrors (10 views)",
        }[card["preprocessing"].get("tta", "none")]
        + "; the accuracies below use it.",  # fmt: skip
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in card["versions"].items()) + ".",
        f"- Weights sha256 `{card['weights_sha256']}`.",
        "",
        "| split | faces | accuracy |",
        "|---|---:|---:|",
    ]
    for split, metrics in card["metrics"].items():
        lines.append(f"| {split} | {metrics['n']:,} | {metrics['accuracy']:.2%} |")
    for split in ("PublicTest", "PrivateTest"):
        if split not in card["metrics"]:
            continue
        lines += ["", f"Per emotion on {split}:", "", "| emotion | faces | recall | precision | F1 |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        for name, row in card["metrics"][split]["per_class"].items():
            rates = f"{row['recall']:.2%} | {row['precision']:.2%} | {row['f1']:.3f}"
            lines.append(f"| {name} | {row['support']:,} | {rates} |")
    settings = ", ".join(f"{key}={value}" for key, value in card["config"].items())
    lines += ["", f"Settings: {settings}.", ""]
    return "\n".join(lines)


def read_card(directory: str | Path) -> dict[str, Any]:
    """The card of a model folder, checked for the project's label order and format."""
    directory = Path(directory)
    card_path = directory / CARD_FILE
    if not card_path.is_file() or not (directory / MODEL_FILE).is_file():
        raise ModelError(f"{directory} is not a model folder: it needs {MODEL_FILE} and {CARD_FILE}")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as error:
        raise ModelError(f"{card_path} is not valid JSON: {error}") from error
    if card.get("format") != FORMAT_VERSION:
        raise ModelError(f"{directory}: model format {card.get('format')!r}, expected {FORMAT_VERSION}")
    if tuple(card.get("emotions", ())) != EMOTIONS:
        raise ModelError(
            f"{directory} was trained with labels {card.get('emotions')}, expected {list(EMOTIONS)}"
        )
    return card


def load_model(directory: str | Path | None = None) -> LoadedModel:
    """Load a model folder, refusing one whose weights, labels or input size do not match its card."""
    import keras

    directory = Path(directory or default_model_path())
    card = read_card(directory)
    weights = directory / MODEL_FILE
    if sha256_file(weights) != card.get("weights_sha256"):
        raise ModelError(f"{weights} does not match the sha256 in its card: the file was changed")
    model = keras.models.load_model(weights, compile=False)
    size = int(card["preprocessing"]["input_size"])
    if tuple(model.input_shape[1:3]) != (size, size):
        raise ModelError(f"{weights} takes {model.input_shape[1:3]} inputs, its card says {size}")
    return LoadedModel(model=model, card=card, path=directory)


def list_models() -> list[Path]:
    """Model folders that ship in ``models/`` and that were trained into ``runs/``, newest first."""
    found = [
        card.parent
        for root in (MODELS_DIR, runs_dir())
        if root.is_dir()
        for card in root.glob(f"**/{CARD_FILE}")
    ]
    return sorted(set(found), key=lambda path: (path != DEFAULT_MODEL, -path.stat().st_mtime))
