"""Saved models: one Keras file plus its model card (label order, preprocessing, settings, metrics)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fer_core.calibrate import Calibration
from fer_core.config import TTA_MODES, WEIGHT_PRECISIONS, TrainConfig
from fer_core.data import PROJECT_ROOT
from fer_core.emotions import EMOTIONS
from fer_core.export import ONNX_FILE

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
MODELS_DIR = PROJECT_ROOT / "models"
RUNS_ENV = "FER_RUNS_DIR"
DEFAULT_MODEL = MODELS_DIR / "default"
LITE_MODEL = MODELS_DIR / "lite"  # one network, no test-time augmentation: video, live camera, batch
MODEL_ENV = "FER_MODEL"
FAST_MODEL_ENV = "FER_FAST_MODEL"
STAGING_PREFIX = ".tmp-"  # a file being written; it replaces its target only once complete

# What a card must hold, by dotted key: what the pages, the CLI and card_markdown read from it.
CARD_SCHEMA: dict[str, type | tuple[type, ...]] = {
    "format": int,
    "name": str,
    "created": str,
    "emotions": list,
    "preset": str,
    "config": dict,
    "preprocessing": dict,
    "preprocessing.input_size": int,
    "preprocessing.normalization": str,
    "data": dict,
    "data.source": str,
    "data.fingerprint": str,
    "metrics": dict,
    "training": dict,
    "training.steps": int,
    "training.seconds": (int, float),
    "training.machine": str,
    "versions": dict,
    "weights_sha256": str,
}
OPTIONAL_CARD_KEYS: dict[str, type | tuple[type, ...]] = {
    "preprocessing.tta": str,
    "training.lineage": list,
    "training.members": list,
    "calibration": dict,
    "export": dict,
}
METRICS_SCHEMA: dict[str, type | tuple[type, ...]] = {"accuracy": (int, float), "n": int}


class ModelError(ValueError):
    """A model folder that is missing, damaged or made for other labels or preprocessing."""


class LoadedModel:
    """A Keras model with its card; ``model`` maps uint8 faces (N, size, size) to probabilities (N, 7).

    ``load``, given instead of ``model``, builds the Keras model on first use: a folder that predicts
    through its ONNX export never imports TensorFlow (seconds at a command's start) unless a caller
    needs the network itself (Grad-CAM, training, refitting).
    """

    def __init__(
        self,
        model: Any = None,
        card: dict[str, Any] | None = None,
        path: str | Path = ".",
        fast: Any = None,  # the ONNX export (fer_core.export.OnnxModel) when the folder ships one
        *,
        load: Callable[[], Any] | None = None,
    ):
        if model is None and load is None:
            raise ValueError("a LoadedModel needs a Keras model or a way to load one")
        self._model, self._load, self._lock = model, load, threading.Lock()
        self.card, self.path, self.fast = card or {}, Path(path), fast

    @property
    def model(self) -> Any:
        """The Keras network, loaded on first use where the folder was opened without it."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def replace(self, **changes: Any) -> LoadedModel:
        """A copy with ``card``, ``path`` or ``fast`` changed, sharing the network (loaded or not)."""
        settings = {"card": self.card, "path": self.path, "fast": self.fast, **changes}
        if self._model is None:
            return LoadedModel(load=lambda: self.model, **settings)
        return LoadedModel(self._model, **settings)

    @property
    def predictor(self) -> Any:
        """What computes probabilities: the ONNX export if there is one, else the Keras model."""
        return self.fast if self.fast is not None else self.model

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.card["config"])

    @property
    def input_size(self) -> int:
        return int(self.card["preprocessing"]["input_size"])

    @property
    def tta(self) -> str:
        """The test-time augmentation the model predicts with unless told otherwise."""
        return card_tta(self.card)

    @property
    def calibration(self) -> Calibration:
        """The temperature and uncertainty threshold fitted on PublicTest (none in older cards)."""
        return Calibration.from_dict(self.card.get("calibration"))

    @property
    def name(self) -> str:
        return self.card.get("name") or self.path.name

    def accuracy(self, split: str = "PrivateTest") -> float | None:
        return card_accuracy(self.card, split)


def card_tta(card: dict[str, Any]) -> str:
    """The test-time augmentation a model's card says it predicts with."""
    return card["preprocessing"].get("tta", "none")


def card_accuracy(card: dict[str, Any], split: str = "PrivateTest") -> float | None:
    """The accuracy a model's card gives for ``split`` (None if it gives none)."""
    metrics = card.get("metrics", {}).get(split)
    return metrics["accuracy"] if metrics else None


def runs_dir() -> Path:
    """Where dashboard and CLI runs are trained: ``$FER_RUNS_DIR`` or ``runs/`` in the project."""
    return Path(os.environ.get(RUNS_ENV) or PROJECT_ROOT / "runs")


def default_model_path() -> Path:
    """``$FER_MODEL`` if set, else the model that ships in ``models/default``."""
    return Path(os.environ.get(MODEL_ENV) or DEFAULT_MODEL)


def fast_model_path() -> Path:
    """The model of the paths that read many faces (video, live camera, batch): ``$FER_FAST_MODEL`` if
    set, else ``models/lite`` where it ships, else :func:`default_model_path`."""
    chosen = os.environ.get(FAST_MODEL_ENV)
    if chosen:
        return Path(chosen)
    return LITE_MODEL if (LITE_MODEL / CARD_FILE).is_file() else default_model_path()


@contextlib.contextmanager
def staged(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; it replaces ``path`` (``os.replace``) only when
    the block ends without an error, so a full disk or a killed process leaves the previous file whole.

    The temporary name keeps ``path``'s suffixes (Keras insists on ``.keras`` and ``.weights.h5``).
    """
    path = Path(path)
    temporary = path.with_name(STAGING_PREFIX + path.name)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


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
    *,
    name: str,
    config: TrainConfig,
    dataset,
    metrics: dict[str, dict],
    training: dict[str, Any],
    calibration: dict[str, Any] | None = None,
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
        **({"calibration": calibration} if calibration else {}),
        "training": {**training, "machine": machine_description()},
        "versions": library_versions(),
    }


def round_weights(model, precision: str) -> float:
    """Round every float32 weight of ``model`` to the nearest ``precision`` value, kept as float32, and
    return the largest change.

    Keras then saves and loads the model like any other, while the low bits of each weight are zero, so
    the deflated ``.keras`` shrinks: by about 37% at float16 and 52% at bfloat16 (what fits six networks
    of the ensemble, not four, into 20 MB). At float16, a weight outside its normal range (a tiny
    batch-norm variance, say) keeps its float32 value rather than lose its precision or overflow.
    """
    if precision not in WEIGHT_PRECISIONS:
        raise ValueError(f"unknown weight precision {precision!r}: one of {', '.join(WEIGHT_PRECISIONS)}")
    if precision == "float32":
        return 0.0
    import ml_dtypes
    import numpy as np

    largest, rounded = 0.0, []
    for weight in model.get_weights():
        if weight.dtype == np.float32:
            if precision == "float16":  # 11 significant bits only within float16's normal range
                half = np.finfo(np.float16)
                inside = (np.abs(weight) >= half.smallest_normal) & (np.abs(weight) <= half.max)
                new = np.where(inside, weight.astype(np.float16).astype(np.float32), weight)
            else:
                new = weight.astype(ml_dtypes.bfloat16).astype(np.float32)
            largest = max(largest, float(np.abs(new - weight).max(initial=0.0)))
            weight = new
        rounded.append(weight)
    model.set_weights(rounded)
    return largest


def save_model(model, directory: str | Path, card: dict[str, Any]) -> Path:
    """Write ``model.keras`` and ``card.json`` (with the weights' sha256) into ``directory``.

    Every file is written under a temporary name first and renamed into place only when all are
    complete: a full disk or an interrupted write leaves the model that was there before usable.
    """
    import keras

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if getattr(model, "optimizer", None) is not None:
        # Ship the network alone: the optimizer's state would triple the file for no use at prediction.
        inference = keras.Model.from_config(model.get_config())  # uncompiled, unlike clone_model
        inference.set_weights(model.get_weights())
        model = inference
    # The blocks end innermost first: the README, the card, then the weights the card describes.
    with (
        staged(directory / MODEL_FILE) as weights,
        staged(directory / CARD_FILE) as card_path,
        staged(directory / "README.md") as readme,
    ):
        model.save(weights)
        _deflate(weights)
        # New weights make any export of the old ones stale: the card names none until `export` runs.
        card = {**{k: v for k, v in card.items() if k != "export"}, "weights_sha256": sha256_file(weights)}
        card_path.write_text(json.dumps(card, indent=1))
        readme.write_text(card_markdown(card))
    (directory / ONNX_FILE).unlink(missing_ok=True)
    return directory


def _deflate(path: Path) -> None:
    """Rewrite a ``.keras`` zip with its entries deflated: Keras stores them as they are, and float32
    weights shrink by a tenth (what keeps a four-network ensemble under 20 MB); loading reads either."""
    packed = path.with_name(STAGING_PREFIX + "deflated-" + path.name)
    try:
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as target:
            for entry in source.infolist():
                target.writestr(entry, source.read(entry), compress_type=zipfile.ZIP_DEFLATED)
        os.replace(packed, path)
    finally:
        packed.unlink(missing_ok=True)


def write_card(directory: str | Path, card: dict[str, Any]) -> None:
    """Replace a model folder's card and its README (each only once completely written)."""
    directory = Path(directory)
    with staged(directory / CARD_FILE) as card_path, staged(directory / "README.md") as readme:
        card_path.write_text(json.dumps(card, indent=1))
        readme.write_text(card_markdown(card))


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
                "- A model soup: one network whose weights are the weighted average of "
                + ", ".join(f"`{entry['name']}` ({entry['weight']:g})" for entry in training["soup"])
                + "."
            ]
            if training.get("soup")
            else []
        ),
        *([_refit_line(training["batch_norm_refit"])] if training.get("batch_norm_refit") else []),
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
        *(
            [
                "- Calibrated by temperature scaling on {fitted_on}: temperature {temperature:.3f}, expected "
                "calibration error there {ece_before:.3f} before and {ece_after:.3f} after; a face whose "
                "calibrated confidence is below {uncertain_below:.2f} is marked uncertain.".format(
                    **card["calibration"]
                )
            ]
            if card.get("calibration")
            else []
        ),
        *(
            [
                "- Exported to ONNX (`{file}`, opset {opset}) for the fast path: its probabilities differ "
                "from Keras's by at most {max_abs_difference:.1e} on {checked_on}.".format(
                    **card["export"]["onnx"]
                )
            ]
            if card.get("export", {}).get("onnx")
            else []
        ),
        *(
            [
                "- Weights rounded to {precision} precision and stored as float32 (largest change "
                "{max_abs_change:.1e}), for a smaller file; the accuracies below are the rounded "
                "weights'.".format(**card["weights_precision"])
            ]
            if card.get("weights_precision")
            else []
        ),
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


def _type_names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return " or ".join(names.get(one, one.__name__) for one in kinds)


def _has_type(value: Any, kind: type | tuple[type, ...]) -> bool:
    # JSON true/false load as bool, a subclass of int: never a count or a number here.
    return isinstance(value, kind) and not isinstance(value, bool)


def card_problems(card: Any) -> list[str]:
    """What is wrong with a model card (missing keys, wrong types, unknown settings); empty if nothing."""
    if not isinstance(card, dict):
        return [f"the card is a JSON {type(card).__name__}, not an object"]
    problems = []
    for schema, required in ((CARD_SCHEMA, True), (OPTIONAL_CARD_KEYS, False)):
        for key, kind in schema.items():
            parent, _, name = key.rpartition(".")
            holder = card.get(parent) if parent else card
            if not isinstance(holder, dict):
                continue  # the parent's own problem is reported
            if name not in holder:
                if required:
                    problems.append(f"{key} is missing")
            elif not _has_type(holder[name], kind):
                problems.append(f"{key} should be {_type_names(kind)}, got {json.dumps(holder[name])[:40]}")
    if problems:
        return problems
    for split, metrics in card["metrics"].items():
        if not isinstance(metrics, dict):
            problems.append(f"metrics.{split} should be an object")
            continue
        problems += [
            f"metrics.{split}.{key} should be {_type_names(kind)}"
            for key, kind in METRICS_SCHEMA.items()
            if not _has_type(metrics.get(key), kind)
        ]
    size = card["preprocessing"]["input_size"]
    if size < 1:
        problems.append(f"preprocessing.input_size must be positive, got {size}")
    if card["preprocessing"].get("tta", "none") not in TTA_MODES:
        problems.append(f"preprocessing.tta must be one of {', '.join(TTA_MODES)}")
    try:
        dt.datetime.fromisoformat(card["created"])
    except ValueError:
        problems.append(f"created should be a date and time, got {card['created'][:40]!r}")
    try:
        TrainConfig.from_dict(card["config"])
    except (TypeError, ValueError) as error:
        problems.append(f"config holds invalid settings ({error})")
    try:
        from fer_core.calibrate import Calibration

        Calibration.from_dict(card.get("calibration"))
    except (KeyError, TypeError, ValueError) as error:
        problems.append(f"calibration is invalid ({type(error).__name__}: {error})")
    return problems


def read_card(directory: str | Path) -> dict[str, Any]:
    """The card of a model folder, checked against the card schema, the format and the label order.

    Raises :class:`ModelError` naming what is wrong with a missing or damaged folder.
    """
    directory = Path(directory)
    card_path = directory / CARD_FILE
    if not card_path.is_file() or not (directory / MODEL_FILE).is_file():
        raise ModelError(f"{directory} is not a model folder: it needs {MODEL_FILE} and {CARD_FILE}")
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{card_path} is damaged: it is not valid JSON ({error})") from None
    if isinstance(card, dict) and "format" in card and card["format"] != FORMAT_VERSION:
        raise ModelError(f"{directory}: model format {card['format']!r}, expected {FORMAT_VERSION}")
    problems = card_problems(card)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ModelError(f"{card_path} is damaged: {'; '.join(problems[:3])}{more}")
    if tuple(card["emotions"]) != EMOTIONS:
        raise ModelError(
            f"{directory} was trained with labels {card.get('emotions')}, expected {list(EMOTIONS)}"
        )
    return card


def verified_card(directory: str | Path) -> dict[str, Any]:
    """The card of a model folder whose weights file is the one the card names (its sha256), checked
    without TensorFlow: what a page that only describes the model needs."""
    directory = Path(directory)
    card = read_card(directory)
    weights = directory / MODEL_FILE
    if sha256_file(weights) != card["weights_sha256"]:
        raise ModelError(f"{weights} does not match the sha256 in its card: the file was changed")
    # Keras says "File not found" for a file that exists but is not a zip archive.
    if not zipfile.is_zipfile(weights):
        raise ModelError(f"{weights} is damaged: it is not a Keras model file (a zip archive)")
    return card


def load_model(directory: str | Path | None = None, *, fast: bool = True) -> LoadedModel:
    """Load a model folder, refusing one whose weights, labels or input size do not match its card.

    With ``fast`` (the default), a folder that ships an ONNX export predicts through it.
    """
    directory = Path(directory or default_model_path())
    card = verified_card(directory)
    weights = directory / MODEL_FILE
    size = int(card["preprocessing"]["input_size"])

    def load_keras():
        import keras

        try:
            model = keras.models.load_model(weights, compile=False)
        except (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile) as error:
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise ModelError(f"{weights} is damaged: Keras cannot load it ({reason})") from None
        if tuple(model.input_shape[1:3]) != (size, size):
            raise ModelError(f"{weights} takes {model.input_shape[1:3]} inputs, its card says {size}")
        return model

    export = _load_export(directory, card) if fast else None
    if export is not None:
        # The card vouches for both files (their sha256); the export predicts, Keras waits until asked.
        return LoadedModel(card=card, path=directory, fast=export, load=load_keras)
    return LoadedModel(load_keras(), card=card, path=directory)


def _load_export(directory: Path, card: dict[str, Any]) -> Any:
    """The folder's ONNX export named in its card (None if it has none), checked against the card."""
    entry = card.get("export", {}).get("onnx")
    if not entry:
        return None
    from fer_core.export import ExportError, OnnxModel

    path = directory / entry["file"]
    if not path.is_file() or sha256_file(path) != entry["sha256"]:
        raise ModelError(f"{path} is missing or does not match the sha256 in its card: export it again")
    try:
        return OnnxModel(path)
    except ExportError as error:
        raise ModelError(str(error)) from None


def list_models() -> list[Path]:
    """Model folders that ship in ``models/`` and that were trained into ``runs/``, newest first."""
    found = [
        card.parent
        for root in (MODELS_DIR, runs_dir())
        if root.is_dir()
        for card in root.glob(f"**/{CARD_FILE}")
        if not any(part.startswith(".") for part in card.relative_to(root).parts)
    ]
    return sorted(set(found), key=lambda path: (path != DEFAULT_MODEL, -_mtime(path)))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed since it was listed
        return 0.0


def _refit_line(refit: dict | list[dict]) -> str:
    """The README's line on batch-norm statistics re-estimated after training (one entry per network)."""
    entries = refit if isinstance(refit, list) else [refit]
    faces = ", ".join(f"{entry['model']} {entry['faces']:,}" for entry in entries)
    return (
        f"- Batch-norm statistics re-estimated after training on the faces each network was trained on "
        f"(Training and its photo crops: {faces}), seen without augmentation."
    )
