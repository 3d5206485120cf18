"""End-to-end runs shared by the CLI and the dashboard: data source -> prepared faces -> saved model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fer_core.artifacts import LoadedModel, load_model, make_card, save_model
from fer_core.config import TrainConfig
from fer_core.data import Dataset, SplitConfig, load_dataset
from fer_core.emotions import SPLITS
from fer_core.evaluate import Evaluation, evaluate
from fer_core.predict import predict_faces
from fer_core.preprocess import prepare
from fer_core.train import CURVES_FILE, ProgressHook, TrainResult, train

MODEL_SUBDIR = "model"


def evaluate_model(loaded: LoadedModel, dataset: Dataset, split: str, tta: bool = False) -> Evaluation:
    """Evaluate a model on one split of a dataset (faces resized to the model's input)."""
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
        model=result.model, card={"preprocessing": {"input_size": config.input_size}}, path=Path(out)
    )
    metrics = {
        split: evaluate_model(trained, dataset, split).to_dict()
        for split in SPLITS
        if len(dataset.splits[split])
    }
    card = make_card(
        name=Path(out).name,
        config=config,
        dataset=dataset,
        metrics=metrics,
        training={
            "steps": result.steps_done,
            "seconds": round(result.train_seconds, 1),
            "stopped_early": result.stopped,
        },
    )
    model_dir = save_model(result.model, Path(out) / MODEL_SUBDIR, card)
    # The curves travel with the model, so that every page can show how it was trained.
    shutil.copyfile(Path(out) / CURVES_FILE, model_dir / CURVES_FILE)
    return load_model(model_dir), result
