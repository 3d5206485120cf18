"""End-to-end runs shared by the CLI and the dashboard: data source -> prepared faces -> saved model."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from fer_core.artifacts import LoadedModel, load_model, make_card, read_card, save_model
from fer_core.config import TrainConfig
from fer_core.data import Dataset, SplitConfig, load_dataset
from fer_core.emotions import SPLITS
from fer_core.evaluate import Evaluation, evaluate
from fer_core.predict import predict_faces
from fer_core.preprocess import prepare
from fer_core.train import CURVES_FILE, ProgressHook, TrainResult, train

MODEL_SUBDIR = "model"


def evaluate_model(loaded: LoadedModel, dataset: Dataset, split: str, tta: str | None = None) -> Evaluation:
    """Evaluate a model on one split of a dataset (faces resized to the model's input); ``tta`` as in
    :func:`fer_core.predict.predict_faces`, by default the model's own."""
    if split not in dataset.splits:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    faces = dataset.splits[split]
    if len(faces) == 0:
        raise ValueError(f"the split {split} of {Path(dataset.source).name} has no faces")
    return evaluate(faces.labels, predict_faces(loaded, faces.images, tta=tta))


def train_model(
    config: TrainConfig,
    out: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    split_config: SplitConfig = SplitConfig(),
    spark_master: str | None = None,
    progress: ProgressHook | None = None,
    restart: bool = False,
) -> tuple[LoadedModel, TrainResult]:
    """Read, prepare (Spark), train (Keras), evaluate every split, and save to ``out/model``.

    ``out`` is the run folder: an interrupted run there resumes unless ``restart``. A stop requested
    while the data is read and prepared ends the run at its first step.
    """
    dataset = load_dataset(data, split_config=split_config, spark_master=spark_master)
    prepared = prepare(dataset, config.preprocess, spark_master=spark_master)
    result = train(config, prepared, out, progress=progress, restart=restart)
    trained = LoadedModel(
        model=result.model,
        card={"preprocessing": {"input_size": config.input_size, "tta": config.tta}},
        path=Path(out),
    )
    metrics = {
        split: evaluate_model(trained, dataset, split).to_dict()
        for split in SPLITS
        if len(dataset.splits[split])
    }
    own = {"steps": result.steps_done, "seconds": round(result.train_seconds, 1)}
    card = make_card(
        name=Path(out).name,
        config=config,
        dataset=dataset,
        metrics=metrics,
        training={
            **own,
            "stopped_early": result.stopped,
            # Every run whose training this model carries: this one and those it started from.
            "lineage": [
                {"name": Path(out).name, **own},
                *(lineage(read_card(config.init_from)) if config.init_from else []),
            ],
        },
    )
    model_dir = save_model(result.model, Path(out) / MODEL_SUBDIR, card)
    # The curves travel with the model, so that every page can show how it was trained.
    shutil.copyfile(Path(out) / CURVES_FILE, model_dir / CURVES_FILE)
    return load_model(model_dir), result


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
) -> LoadedModel:
    """Save a trained model, or the average of several (an ensemble), to ``out`` with the test-time
    augmentation it predicts with and its card re-measured on the PublicTest and PrivateTest of ``data``.

    The data must be the one the models were trained on (same fingerprint). The card's training cost
    is the sum over every run the models are made of, each counted once.
    """
    from fer_core.models import build_ensemble

    members = [load_model(source) for source in sources]
    if not members:
        raise ValueError("name at least one model to ship")
    dataset = load_dataset(data, split_config=split_config, spark_master=spark_master)
    for member in members:
        if member.card["data"]["fingerprint"] != dataset.fingerprint:
            raise ValueError(f"{member.path} was trained on other data than {Path(dataset.source).name}")
    first = members[0]
    config = dataclasses.replace(first.config, tta=tta)
    model = first.model if len(members) == 1 else build_ensemble([member.model for member in members])
    probe = LoadedModel(
        model=model, card={"preprocessing": {"input_size": first.input_size, "tta": tta}}, path=Path(out)
    )
    # The held-out splits only: ten views of every Training face per member would take minutes.
    metrics = {
        split: evaluate_model(probe, dataset, split).to_dict()
        for split in ("PublicTest", "PrivateTest")
        if len(dataset.splits[split])
    }
    runs = {
        (run["name"], run["steps"], run["seconds"]): run for member in members for run in lineage(member.card)
    }
    training = {
        "steps": sum(run["steps"] for run in runs.values()),
        "seconds": round(sum(run["seconds"] for run in runs.values()), 1),
        "stopped_early": False,
        "lineage": list(runs.values()),
    }
    if len(members) > 1:
        training["members"] = [
            {"name": member.name, "path": str(member.path), "weights_sha256": member.card["weights_sha256"]}
            for member in members
        ]
    card = make_card(name=name, config=config, dataset=dataset, metrics=metrics, training=training)
    model_dir = save_model(model, out, card)
    curves = first.path / CURVES_FILE
    if curves.exists():
        shutil.copyfile(curves, model_dir / CURVES_FILE)
    return load_model(model_dir)
