"""Training with Keras ``fit``: curves, checkpoints, resume after an interruption, a plain progress hook."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.artifacts import staged
from fer_core.config import TrainConfig
from fer_core.data import FaceSet
from fer_core.emotions import NUM_CLASSES
from fer_core.preprocess import PreparedData

CURVES_FILE = "curves.csv"
BACKUP_DIR = "backup"  # the Keras checkpoint an interrupted run resumes from
BEST_FILE = "best.weights.h5"
PARKED_DIR = "parked"  # an unfinished run's checkpoint, small enough to commit (see :func:`park`)
_BFLOAT16 = "fer_bfloat16"  # marks a parked optimizer array stored as bfloat16 bits
CURVE_FIELDS = ("step", "minibatch_loss", "minibatch_accuracy", "val_loss", "val_accuracy", "elapsed_s")
# Created in the run folder to ask a running job to stop after its current step; the run that
# honours it removes it, so a stop pressed while the data still loads counts too.
STOP_FILE = "STOP"
LOG_EVERY = 50  # steps between minibatch points on the curves (fewer for short runs)


@dataclass(frozen=True)
class Progress:
    """What a progress hook receives, often: plain values, no Keras objects."""

    step: int
    total_steps: int
    elapsed_s: float
    minibatch_accuracy: float | None = None
    val_accuracy: float | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps)

    @property
    def eta_s(self) -> float | None:
        return self.elapsed_s / self.fraction * (1 - self.fraction) if self.step else None


ProgressHook = Callable[[Progress], None]


@dataclass(frozen=True)
class TrainResult:
    model: Any  # the trained keras.Model
    steps_done: int
    stopped: bool  # ended before its steps by a stop request or early stopping
    train_seconds: float
    run_dir: Path


def _select_training(
    prepared: PreparedData, config: TrainConfig, extra: FaceSet | None = None
) -> tuple[FaceSet, FaceSet]:
    """Training faces (capped by ``max_train_faces``, then ``extra`` added) and the validation faces."""
    rng = np.random.default_rng(config.seed)
    train = prepared.splits["Training"]
    if config.validation == "holdout":
        order = rng.permutation(len(train))
        cut = max(1, len(train) // 10)
        validation = FaceSet(train.images[order[:cut]], train.labels[order[:cut]])
        train = FaceSet(train.images[order[cut:]], train.labels[order[cut:]])
    else:
        validation = prepared.splits["PublicTest"]
    if config.max_train_faces and len(train) > config.max_train_faces:
        keep = rng.choice(len(train), config.max_train_faces, replace=False)
        train = FaceSet(train.images[keep], train.labels[keep])
    if len(train) == 0 or len(validation) == 0:
        raise ValueError("training needs faces in the training and validation splits; this data has none")
    if extra is not None and len(extra):
        train = FaceSet(
            np.concatenate([train.images, extra.images]), np.concatenate([train.labels, extra.labels])
        )
    return train, validation


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Balanced weights, ``n / (classes * count)``, for the emotions present."""
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    present = counts > 0
    weights = np.where(present, len(labels) / (present.sum() * np.maximum(counts, 1)), 0.0)
    return {index: float(weight) for index, weight in enumerate(weights)}


def _dataset(faces: FaceSet, config: TrainConfig, training: bool, soft: np.ndarray | None = None):
    """Batches of (faces, targets): one-hot labels, followed by the teacher's softened probabilities
    when distilling; with ``mixup``, training batches mix each face and its targets with another's."""
    import tensorflow as tf

    targets = np.eye(NUM_CLASSES, dtype=np.float32)[faces.labels]
    if soft is not None:
        targets = np.concatenate([targets, soft], axis=1)
    data = tf.data.Dataset.from_tensor_slices((faces.images, targets))
    if training:
        data = data.shuffle(len(faces), seed=config.seed, reshuffle_each_iteration=True).repeat()
    data = data.batch(config.batch_size if training else 256, drop_remainder=training)
    if training and config.mixup:
        data = data.map(lambda x, y: _mixup(x, y, config.mixup), num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def _mixup(faces, targets, alpha: float):
    """Mixup (Zhang et al. 2018): each face of the batch blended with a shuffled partner, its targets
    alike, by a weight drawn from Beta(alpha, alpha) per face."""
    import tensorflow as tf

    count = tf.shape(faces)[0]
    first, second = tf.random.gamma([count], alpha), tf.random.gamma([count], alpha)
    weight = first / (first + second)
    order = tf.random.shuffle(tf.range(count))
    faces = tf.cast(faces, tf.float32)
    mixed = weight[:, None, None] * faces + (1 - weight[:, None, None]) * tf.gather(faces, order)
    return mixed, weight[:, None] * targets + (1 - weight[:, None]) * tf.gather(targets, order)


def _optimizer(config: TrainConfig):
    import keras

    rate = config.learning_rate
    if config.schedule == "cosine":
        # A short linear warm-up from a tenth of the rate steadies batch norm's first steps.
        warmup = max(1, config.steps // 30)
        rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate / 10,
            decay_steps=max(1, config.steps - warmup),
            warmup_target=config.learning_rate,
            warmup_steps=warmup,
        )
    # The average is written into the weights at the end of every Keras epoch, just before validation.
    average = (
        {"use_ema": True, "ema_momentum": config.ema, "ema_overwrite_frequency": config.steps_per_epoch}
        if config.ema
        else {}
    )
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(rate, **average)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(rate, momentum=0.9, nesterov=True, **average)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(rate, **average)
    return keras.optimizers.AdamW(rate, weight_decay=config.weight_decay, **average)


def _callbacks(config: TrainConfig, run_dir: Path, progress: ProgressHook | None, started: float):
    import keras

    log_every = max(1, min(LOG_EVERY, config.steps // 20))  # short runs still draw a curve

    class Curves(keras.callbacks.Callback):
        """Writes the report's curves against the global step, and feeds the progress hook.

        Keras reports running means since the start of the epoch; with a fixed batch size the
        minibatch value is recovered exactly from two consecutive means.
        """

        def __init__(self) -> None:
            super().__init__()
            self.path = run_dir / CURVES_FILE
            self.previous = (0.0, 0.0)

        def _write(self, row: dict[str, Any]) -> None:
            new = not self.path.exists()
            with open(self.path, "a", newline="") as stream:
                writer = csv.DictWriter(stream, CURVE_FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow(row)

        def _step(self) -> int:
            return int(self.model.optimizer.iterations.numpy())

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self.previous = (0.0, 0.0)

        def on_train_batch_end(self, batch, logs=None) -> None:
            logs = logs or {}
            count = batch + 1
            loss, accuracy = float(logs.get("loss", 0.0)), float(logs.get("accuracy", 0.0))
            minibatch_loss = loss * count - self.previous[0] * (count - 1)
            minibatch_accuracy = accuracy * count - self.previous[1] * (count - 1)
            self.previous = (loss, accuracy)
            step = self._step()
            elapsed = time.monotonic() - started
            if step % log_every == 0:
                self._write(
                    {
                        "step": step,
                        "minibatch_loss": round(minibatch_loss, 5),
                        "minibatch_accuracy": round(min(max(minibatch_accuracy, 0.0), 1.0), 5),
                        "elapsed_s": round(elapsed, 2),
                    }
                )
            if progress and (step % 10 == 0 or step == config.steps):
                progress(Progress(step, config.steps, elapsed, minibatch_accuracy=accuracy))

        def on_epoch_end(self, epoch, logs=None) -> None:
            logs = logs or {}
            elapsed = time.monotonic() - started
            self._write(
                {
                    "step": self._step(),
                    "val_loss": round(float(logs["val_loss"]), 5),
                    "val_accuracy": round(float(logs["val_accuracy"]), 5),
                    "elapsed_s": round(elapsed, 2),
                }
            )
            if progress:
                progress(
                    Progress(self._step(), config.steps, elapsed, val_accuracy=float(logs["val_accuracy"]))
                )

    class StopOnRequest(keras.callbacks.Callback):
        """Ends training cleanly at ``config.steps`` exactly, or when the run folder's STOP file
        appears (the dashboard's Stop); Keras still validates the epoch it ended in."""

        def on_train_batch_end(self, batch, logs=None) -> None:
            done = int(self.model.optimizer.iterations.numpy()) >= config.steps
            if done or (run_dir / STOP_FILE).exists():
                self.model.stop_training = True

    class AtomicBackup(keras.callbacks.BackupAndRestore):
        """Keras's BackupAndRestore, each file written under a temporary name and renamed into place:
        a process killed (or a disk filling up) while it saves keeps the previous checkpoint whole."""

        def _save_model(self) -> None:  # the one method Keras uses to write (its paths are its own)
            os.makedirs(self.backup_dir, exist_ok=True)
            with staged(self._weights_path) as weights:
                self.model.save_weights(str(weights), overwrite=True)
            with staged(self._training_metadata_path) as metadata:
                state = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
                metadata.write_text(json.dumps(state))

    class AtomicBest(keras.callbacks.ModelCheckpoint):
        """ModelCheckpoint writing to a temporary name, renamed over the best weights once written."""

        def on_epoch_end(self, epoch, logs=None) -> None:
            super().on_epoch_end(epoch, logs)
            if os.path.exists(self.filepath):
                os.replace(self.filepath, run_dir / BEST_FILE)

    callbacks = [
        # Kept after a stop (not deleted at train end) so that the next call resumes from it.
        AtomicBackup(str(run_dir / BACKUP_DIR), save_freq="epoch", delete_checkpoint=False),
        Curves(),
        StopOnRequest(),
    ]
    if config.keep_best:
        callbacks.append(
            AtomicBest(
                str(run_dir / f".tmp-{BEST_FILE}"),
                monitor="val_accuracy",
                mode="max",
                save_best_only=True,
                save_weights_only=True,
            )
        )
    if config.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=config.patience)
        )
    return callbacks


def _load_initial_weights(model, directory: Path) -> None:
    """Start from a saved model's weights (a warm restart or fine-tuning)."""
    from fer_core.artifacts import load_model

    try:
        model.set_weights(load_model(directory).model.get_weights())
    except ValueError as error:
        raise ValueError(f"{directory} has another architecture than this run's settings: {error}") from None


def _repair_curves(curves: Path) -> None:
    """Drop the unfinished last line a process killed while appending to the curves leaves behind."""
    if not curves.exists():
        return
    content = curves.read_bytes()
    if content and not content.endswith(b"\n"):
        with staged(curves) as repaired:
            repaired.write_bytes(content[: content.rfind(b"\n") + 1])


def _elapsed_so_far(curves: Path) -> float:
    if not curves.exists():
        return 0.0
    with open(curves, newline="") as stream:
        rows = [row for row in csv.DictReader(stream) if row.get("elapsed_s")]
    return float(rows[-1]["elapsed_s"]) if rows else 0.0


def _restore_finished(model, run_dir: Path, steps: int) -> bool:
    """Load the run's checkpoint if it holds a finished run (all its steps), so that a run killed after
    its last step, while its model was evaluated or saved, is not trained again or one step further."""
    weights = run_dir / BACKUP_DIR / "latest.weights.h5"
    if not weights.exists():
        return False
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # its variables must exist to be loaded
    try:
        model.load_weights(str(weights))
    except (OSError, ValueError) as error:
        raise ValueError(
            f"the checkpoint in {weights.parent} cannot be read ({error}); start the run again with restart"
        ) from None
    return int(model.optimizer.iterations.numpy()) >= steps


def discard_checkpoint(run_dir: str | Path) -> None:
    """Remove a finished run's checkpoint, and its parked copy (once its model is saved)."""
    for name in (BACKUP_DIR, PARKED_DIR):
        shutil.rmtree(Path(run_dir) / name, ignore_errors=True)


def _convert_weights(source: Path, target: Path, optimizer: str) -> None:
    """Copy a Keras weights file, its optimizer's float arrays ``"shrunk"`` to bfloat16 (float32's range,
    so Adam's tiny second moments do not flush to zero), ``"restored"`` to float32, or ``"dropped"``. The
    model's own weights are copied exactly."""
    import h5py
    import ml_dtypes

    with h5py.File(source, "r") as old, staged(target) as temporary, h5py.File(temporary, "w") as new:
        new.attrs.update(dict(old.attrs))

        def copy(name: str, item) -> None:
            in_optimizer = name.split("/", 1)[0] == "optimizer"
            if in_optimizer and optimizer == "dropped":
                return
            if isinstance(item, h5py.Group):
                new.require_group(name).attrs.update(dict(item.attrs))
                return
            data, attributes = item[()], dict(item.attrs)
            if in_optimizer and optimizer == "shrunk" and getattr(data, "dtype", None) == np.float32:
                data = data.astype(ml_dtypes.bfloat16).view(np.uint16)  # h5py stores no bfloat16
                attributes[_BFLOAT16] = True
            elif attributes.pop(_BFLOAT16, False):
                data = data.view(ml_dtypes.bfloat16).astype(np.float32)
            new.create_dataset(name, data=data).attrs.update(attributes)

        old.visititems(copy)


def park(run_dir: str | Path, out: str | Path) -> Path:
    """Copy an unfinished run to ``out`` so that it outlives this machine: its settings, curves and last
    checkpoint, the optimizer's moments in bfloat16 (the model's weights exact: about 60% of the Keras
    backup), and its best weights. ``train`` with the same settings and ``out`` as its run
    folder resumes from there."""
    run_dir, out = Path(run_dir), Path(out)
    backup = run_dir / BACKUP_DIR
    if not (backup / "latest.weights.h5").exists():
        raise ValueError(f"{run_dir} holds no checkpoint to park (it has not reached its first epoch)")
    parked = out / PARKED_DIR
    parked.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", CURVES_FILE):
        if (run_dir / name).exists() and (run_dir / name).resolve() != (out / name).resolve():
            shutil.copyfile(run_dir / name, out / name)
    _convert_weights(backup / "latest.weights.h5", parked / "latest.weights.h5", "shrunk")
    shutil.copyfile(backup / "training_metadata.json", parked / "training_metadata.json")
    if (run_dir / BEST_FILE).exists():
        _convert_weights(run_dir / BEST_FILE, parked / BEST_FILE, "dropped")
    return parked


def _unpark(run_dir: Path) -> None:
    """Turn a parked run back into the checkpoint ``fit`` resumes from (float32 again)."""
    parked = run_dir / PARKED_DIR
    backup = run_dir / BACKUP_DIR
    staging = run_dir / f".{BACKUP_DIR}-unparking"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    _convert_weights(parked / "latest.weights.h5", staging / "latest.weights.h5", "restored")
    shutil.copyfile(parked / "training_metadata.json", staging / "training_metadata.json")
    if (parked / BEST_FILE).exists() and not (run_dir / BEST_FILE).exists():
        shutil.copyfile(parked / BEST_FILE, run_dir / BEST_FILE)
    os.replace(staging, backup)


def read_curves(run_dir: str | Path):
    """The run's curves as a DataFrame (one row per step, resumed duplicates dropped), or None."""
    import pandas as pd

    path = Path(run_dir) / CURVES_FILE
    if not path.exists():
        return None
    curves = pd.read_csv(path)
    minibatch = curves.dropna(subset=["minibatch_accuracy"]).drop_duplicates("step", keep="last")
    validation = curves.dropna(subset=["val_accuracy"]).drop_duplicates("step", keep="last")
    merged = minibatch.drop(columns=["val_loss", "val_accuracy"]).merge(
        validation[["step", "val_loss", "val_accuracy", "elapsed_s"]],
        on="step",
        how="outer",
        suffixes=("", "_val"),
    )
    merged["elapsed_s"] = merged["elapsed_s"].fillna(merged.pop("elapsed_s_val"))
    return merged.sort_values("step").reset_index(drop=True)


def train(
    config: TrainConfig,
    prepared: PreparedData,
    run_dir: str | Path,
    *,
    progress: ProgressHook | None = None,
    restart: bool = False,
    keep_checkpoint: bool = False,
    extra_training: FaceSet | None = None,
) -> TrainResult:
    """Train ``config`` on ``prepared`` in ``run_dir``; an interrupted run there resumes where it was.

    ``run_dir`` receives ``config.json``, ``curves.csv``, the Keras backup used to resume and, with
    ``keep_best``, the best weights by validation accuracy (restored into the returned model). Every
    file is replaced only once completely written, so a process killed at any moment resumes from its
    last checkpoint. The finished run's checkpoint is removed unless ``keep_checkpoint`` (the caller
    then removes it with :func:`discard_checkpoint` once the model is saved). ``extra_training``
    (faces ready for the model, like ``prepared``'s) is added to the training faces.
    """
    import keras

    from fer_core.models import build_model

    if prepared.config != config.preprocess:
        raise ValueError(f"data prepared with {prepared.config}, but the run needs {config.preprocess}")
    run_dir = Path(run_dir)
    if restart:
        for name in (BACKUP_DIR, PARKED_DIR, CURVES_FILE, BEST_FILE):
            path = run_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / BACKUP_DIR).exists() and (run_dir / PARKED_DIR).exists():
        _unpark(run_dir)  # a run parked on another machine resumes here
    saved = run_dir / "config.json"
    if saved.exists() and (run_dir / BACKUP_DIR).exists():
        previous = TrainConfig.from_dict(json.loads(saved.read_text()))
        if previous != config:
            raise ValueError(
                f"{run_dir} holds an interrupted run with other settings; resume it with the same "
                "settings, or restart it"
            )
    with staged(saved) as temporary:
        temporary.write_text(json.dumps(config.to_dict(), indent=1))

    keras.utils.set_random_seed(config.seed)
    train_faces, validation = _select_training(prepared, config, extra_training)
    soft = {"train": None, "validation": None}
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    if config.teacher:
        from fer_core.distill import distillation_loss, soften, teacher_targets

        found = teacher_targets(
            config.teacher, {"train": train_faces.images, "validation": validation.images}, run_dir
        )
        soft = {name: soften(found[name], config.distill_temperature) for name in soft}
        loss = distillation_loss(config.distill_temperature, config.distill_weight, config.label_smoothing)
    model = build_model(config)
    if config.init_from:
        _load_initial_weights(model, Path(config.init_from))
    from fer_core.distill import label_accuracy

    model.compile(
        optimizer=_optimizer(config),
        loss=loss,
        metrics=[keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy")],
    )
    # A resumed run's clock continues from where the curves stopped.
    _repair_curves(run_dir / CURVES_FILE)
    started = time.monotonic() - _elapsed_so_far(run_dir / CURVES_FILE)
    if not _restore_finished(model, run_dir, config.steps):
        model.fit(
            _dataset(train_faces, config, training=True, soft=soft["train"]),
            validation_data=_dataset(validation, config, training=False, soft=soft["validation"]),
            # StopOnRequest ends the run at exactly config.steps; epochs is only an upper bound, since a
            # stopped run's partial epoch counts as a whole one when it resumes.
            epochs=2 * config.epochs + 1,
            steps_per_epoch=config.steps_per_epoch,
            class_weight=class_weights(train_faces.labels) if config.class_weight == "balanced" else None,
            callbacks=_callbacks(config, run_dir, progress, started),
            verbose=0,
        )
    seconds = time.monotonic() - started
    steps_done = int(model.optimizer.iterations.numpy())
    finished = steps_done >= config.steps
    if finished and not keep_checkpoint:
        discard_checkpoint(run_dir)
    (run_dir / STOP_FILE).unlink(missing_ok=True)  # the request is honoured
    best = run_dir / BEST_FILE
    if config.keep_best and best.exists():
        model.load_weights(str(best))
    return TrainResult(
        model=model,
        steps_done=steps_done,
        stopped=not finished,
        train_seconds=seconds,
        run_dir=run_dir,
    )
