"""End-to-end runs shared by the CLI and the dashboard: data source -> prepared faces -> saved model."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np

from fer_core.artifacts import (
    LoadedModel,
    card_tta,
    load_model,
    make_card,
    read_card,
    round_weights,
    save_model,
    sha256_file,
    staged,
    write_card,
)
from fer_core.calibrate import fit_calibration
from fer_core.config import TrainConfig
from fer_core.data import Dataset, FaceSet, SplitConfig, load_dataset
from fer_core.emotions import SPLITS
from fer_core.evaluate import Evaluation, evaluate
from fer_core.predict import predict_faces, tta_views
from fer_core.preprocess import prepare, preprocess_faces, resize_faces
from fer_core.train import CURVES_FILE, ProgressHook, TrainResult, discard_checkpoint, train

MODEL_SUBDIR = "model"


def _split_faces(dataset: Dataset, split: str):
    if split not in dataset.splits:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    faces = dataset.splits[split]
    if len(faces) == 0:
        raise ValueError(f"the split {split} of {Path(dataset.source).name} has no faces")
    return faces


def evaluate_model(loaded: LoadedModel, dataset: Dataset, split: str, tta: str | None = None) -> Evaluation:
    """Evaluate a model on one split of a dataset (faces resized to the model's input); ``tta`` as in
    :func:`fer_core.predict.predict_faces`, by default the model's own. The evaluation's calibration
    error is of the model's calibrated probabilities."""
    faces = _split_faces(dataset, split)
    return evaluate(faces.labels, predict_faces(loaded, faces.images, tta=tta))


def calibrate_model(loaded: LoadedModel, dataset: Dataset) -> dict:
    """Fit the model's calibration on PublicTest (with its TTA): the card's ``calibration`` entry,
    with the calibration error there before and after."""
    faces = _split_faces(dataset, "PublicTest")
    calibration, fitted = fit_calibration(predict_faces(loaded, faces.images, calibrated=False), faces.labels)
    return {**calibration.to_dict(), "fitted_on": "PublicTest", **{k: round(v, 4) for k, v in fitted.items()}}


def _measure(model, config: TrainConfig, dataset: Dataset, out: Path, splits) -> tuple[dict, dict | None]:
    """The card's calibration (when there is a PublicTest) and metrics per split, measured with it."""
    probe = LoadedModel(
        model=model, card={"preprocessing": {"input_size": config.input_size, "tta": config.tta}}, path=out
    )
    calibration = calibrate_model(probe, dataset) if len(dataset.splits["PublicTest"]) else None
    if calibration:
        probe = probe.replace(card={**probe.card, "calibration": calibration})
    measured = [split for split in splits if len(dataset.splits[split])]
    metrics = {split: evaluate_model(probe, dataset, split).to_dict() for split in measured}
    return metrics, calibration


def train_model(
    config: TrainConfig,
    out: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    split_config: SplitConfig = SplitConfig(),
    spark_master: str | None = None,
    progress: ProgressHook | None = None,
    restart: bool = False,
    announce: Callable[[str], None] | None = None,
) -> tuple[LoadedModel, TrainResult]:
    """Read, prepare (Spark), train (Keras), evaluate every split, and save to ``out/model``.

    ``out`` is the run folder: an interrupted run there resumes unless ``restart``. A stop requested
    while the data is read and prepared ends the run at its first step. The run's checkpoint is kept
    until its model is saved, so a run killed at any moment resumes without training again.
    ``announce`` receives a line when training ends and the measuring of every split begins (minutes
    for a model with test-time augmentation).
    """
    for folder in (config.init_from, config.teacher):
        if folder:
            read_card(folder)  # a missing or damaged start or teacher model fails now, not after Spark
    dataset = load_dataset(data, split_config=split_config, spark_master=spark_master)
    prepared = prepare(dataset, config.preprocess, spark_master=spark_master)
    result = train(
        config,
        prepared,
        out,
        progress=progress,
        restart=restart,
        keep_checkpoint=True,
        extra_training=training_photo_crops(dataset, config),
    )
    if announce:
        ended = "stopped" if result.stopped else "finished"
        announce(
            f"training {ended} at step {result.steps_done:,}; measuring it on every split "
            f"(test-time augmentation: {config.tta}) and saving it"
        )
    metrics, calibration = _measure(result.model, config, dataset, Path(out), SPLITS)
    teacher = teacher_entry(config)
    own = {"steps": result.steps_done, "seconds": round(result.train_seconds, 1)}
    card = make_card(
        name=Path(out).name,
        config=config,
        dataset=dataset,
        metrics=metrics,
        training={
            **own,
            "stopped_early": result.stopped,
            **({"teacher": teacher} if teacher else {}),
            # Every run whose training this model carries: this one and those it started from.
            "lineage": [
                {"name": Path(out).name, **own},
                *(lineage(read_card(config.init_from)) if config.init_from else []),
            ],
        },
        calibration=calibration,
    )
    model_dir = save_model(result.model, Path(out) / MODEL_SUBDIR, card)
    # The curves travel with the model, so that every page can show how it was trained.
    with staged(model_dir / CURVES_FILE) as curves:
        shutil.copyfile(Path(out) / CURVES_FILE, curves)
    if not result.stopped:
        discard_checkpoint(out)
    return load_model(model_dir), result


def _soup(members: list[LoadedModel], weights: list[float]) -> LoadedModel:
    """The first model, its weights replaced by the weighted average of every model's (same shapes)."""
    if len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(
            f"a soup needs one weight (>= 0, not all 0) per model, got {weights} for {len(members)}"
        )
    tensors = [member.model.get_weights() for member in members]
    if any([w.shape for w in other] != [w.shape for w in tensors[0]] for other in tensors[1:]):
        raise ValueError("a soup needs models of one architecture (the same weight shapes)")
    total = sum(weights)
    averaged = [
        sum(weight / total * values[index] for weight, values in zip(weights, tensors, strict=True))
        for index in range(len(tensors[0]))
    ]
    first = members[0]
    first.model.set_weights(averaged)
    return first


def _refit_batch_norm(member: LoadedModel, dataset: Dataset) -> dict:
    """Re-estimate ``member``'s batch-norm statistics (in place) on its own training faces, plain:
    FER2013's Training split and, for a model trained with them, its photo crops."""
    from fer_core.batchnorm import refit_batch_norm

    faces = [resize_faces(dataset.splits["Training"].images, member.input_size)]
    crops = training_photo_crops(dataset, member.config)
    if crops is not None:
        faces.append(resize_faces(crops.images, member.input_size))
    faces = np.concatenate(faces)
    layers = refit_batch_norm(member.model, faces)
    return {
        "model": member.name,
        "faces": len(faces),
        "photo_crops": member.config.photo_crops,
        "layers": layers,
    }


def _members_to_refit(members: list[LoadedModel], refit_bn: bool | Collection[str]) -> set[str]:
    """The names of the members whose batch norm ``ship`` refits: all, none, or those named."""
    names = [member.name for member in members]
    if isinstance(refit_bn, bool):
        return set(names) if refit_bn else set()
    unknown = sorted(set(refit_bn) - set(names))
    if unknown:
        raise ValueError(f"--refit-bn names {', '.join(unknown)}, not among the models ({', '.join(names)})")
    return set(refit_bn)


def training_photo_crops(dataset: Dataset, config: TrainConfig) -> FaceSet | None:
    """``config.photo_crops`` Training faces as the photo path frames them, prepared like the rest."""
    if not config.photo_crops:
        return None
    from fer_core.synthetic import cached_photo_crops

    crops = cached_photo_crops(dataset.splits["Training"], config.photo_crops, config.seed, dataset.cache_key)
    return FaceSet(*preprocess_faces(crops.images, crops.labels, config.preprocess, training=True))


def teacher_entry(config: TrainConfig) -> dict | None:
    """The card's record of a distilled model's teacher (its name, weights and test-time augmentation,
    and its members if it is an ensemble), read from the teacher's folder; None without a teacher."""
    if not config.teacher:
        return None
    card = read_card(config.teacher)
    members = [member["name"] for member in card["training"].get("members", [])]
    return {
        "name": card["name"],
        "path": str(config.teacher),
        "weights_sha256": card["weights_sha256"],
        "tta": card_tta(card),
        **({"members": members} if members else {}),
        "temperature": config.distill_temperature,
        "weight": config.distill_weight,
    }


def lineage(card: dict) -> list[dict]:
    """The training runs a saved model is made of: its own and, for a warm restart, those of the model
    it started from (read from that model's card when the card predates lineages and it is at hand)."""
    training = card["training"]
    if training.get("lineage"):
        return training["lineage"]
    own = {"name": card["name"], "steps": training["steps"], "seconds": training["seconds"]}
    start = card["config"].get("init_from")
    return [own, *(lineage(read_card(start)) if start and Path(start).is_dir() else [])]


def ship_model(
    sources: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    name: str,
    tta: str,
    data: str | os.PathLike | None = None,
    split_config: SplitConfig = SplitConfig(),
    spark_master: str | None = None,
    refit_bn: bool | Collection[str] = False,
    soup: list[float] | None = None,
    precision: str = "float32",
) -> LoadedModel:
    """Save a trained model, or the average of several (an ensemble), to ``out`` with the test-time
    augmentation it predicts with and its card re-measured on the PublicTest and PrivateTest of ``data``.

    The data must be the one the models were trained on (same fingerprint). The card's training cost
    is the sum over every run the models are made of, each counted once. With ``refit_bn``, each
    model's batch-norm statistics are first re-estimated on the faces it was trained on (Training and
    its photo crops), seen without augmentation (:mod:`fer_core.batchnorm`); given model names (the
    names on their cards), only those models'.

    With ``soup`` (one weight per model), the models, of one architecture, become one network whose
    weights are their weighted average (a "model soup", Wortsman et al. 2022: it works for networks
    fine-tuned from a common start); its batch-norm statistics are then refitted, since averaged
    running statistics describe no network.

    With ``precision`` float16 or bfloat16, the weights are rounded to that precision (kept float32,
    :func:`fer_core.artifacts.round_weights`) before anything is measured, so the card describes the
    weights as shipped and the file is a third to a half smaller.
    """
    from fer_core.models import build_ensemble

    members = [load_model(source) for source in sources]
    if not members:
        raise ValueError("name at least one model to ship")
    refit = _members_to_refit(members, refit_bn)
    dataset = load_dataset(data, split_config=split_config, spark_master=spark_master)
    for member in members:
        if member.card["data"]["fingerprint"] != dataset.fingerprint:
            raise ValueError(f"{member.path} was trained on other data than {Path(dataset.source).name}")
    if soup:
        members = [_soup(members, soup)]
        refit = {members[0].name}
    refitted = [_refit_batch_norm(member, dataset) for member in members if member.name in refit]
    first = members[0]
    config = dataclasses.replace(first.config, tta=tta)
    model = first.model if len(members) == 1 else build_ensemble([member.model for member in members])
    rounding = round_weights(model, precision)
    # The held-out splits only: ten views of every Training face per member would take minutes.
    metrics, calibration = _measure(model, config, dataset, Path(out), ("PublicTest", "PrivateTest"))
    runs = {
        (run["name"], run["steps"], run["seconds"]): run for member in members for run in lineage(member.card)
    }
    training = {
        "steps": sum(run["steps"] for run in runs.values()),
        "seconds": round(sum(run["seconds"] for run in runs.values()), 1),
        "stopped_early": False,
        "lineage": list(runs.values()),
    }
    teacher = first.card["training"].get("teacher") or teacher_entry(config)
    if teacher and len(members) == 1:
        training["teacher"] = teacher
    if soup:
        training["soup"] = [
            {"name": read_card(source)["name"], "path": str(source), "weight": weight}
            for source, weight in zip(sources, soup, strict=True)
        ]
    if refitted:
        training["batch_norm_refit"] = refitted if len(members) > 1 else refitted[0]
    if len(members) > 1:
        training["members"] = [
            {"name": member.name, "path": str(member.path), "weights_sha256": member.card["weights_sha256"]}
            for member in members
        ]
    card = make_card(
        name=name, config=config, dataset=dataset, metrics=metrics, training=training, calibration=calibration
    )
    if precision != "float32":
        card["weights_precision"] = {"precision": precision, "max_abs_change": rounding}
    model_dir = save_model(model, out, card)
    curves = first.path / CURVES_FILE
    if curves.exists():
        shutil.copyfile(curves, model_dir / CURVES_FILE)
    return load_model(model_dir)


def export_model(
    directory: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    split_config: SplitConfig = SplitConfig(),
    spark_master: str | None = None,
) -> LoadedModel:
    """Add an ONNX export (the fast path, see :mod:`fer_core.export`) to a model folder.

    The export is checked on the PublicTest faces of ``data`` and their mirrors (on the shipped sample
    when no data is named) and refused if any probability differs from Keras's by more than
    :data:`fer_core.export.TOLERANCE`; the card records the largest difference.
    """
    from fer_core.export import (
        ONNX_FILE,
        TOLERANCE,
        ExportError,
        OnnxModel,
        export_entry,
        export_onnx,
        max_difference,
    )

    directory = Path(directory)
    loaded = load_model(directory, fast=False)
    dataset = load_dataset(data, split_config=split_config, spark_master=spark_master)
    faces = _split_faces(dataset, "PublicTest").images
    inputs = np.concatenate(tta_views(resize_faces(faces, loaded.input_size), "flip"))
    with staged(directory / ONNX_FILE) as path:
        export_onnx(loaded.model, path)
        difference = max_difference(loaded.model, OnnxModel(path), inputs)
        if difference > TOLERANCE:
            raise ExportError(
                f"the ONNX export differs from Keras by {difference:.2e} (at most {TOLERANCE:g})"
            )
        digest = sha256_file(path)
    entry = export_entry(directory / ONNX_FILE, digest, difference, "PublicTest (and mirrored)", len(inputs))
    write_card(directory, {**loaded.card, "export": entry})
    return load_model(directory)
