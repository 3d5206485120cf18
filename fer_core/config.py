"""The training configuration: one frozen dataclass that drives the CLI, the dashboard and the tests."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from fer_core.preprocess import PreprocessConfig

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
SCHEDULES = ("constant", "cosine")
CLASS_WEIGHTS = ("none", "balanced")
NORMALIZATIONS = ("report", "unit")  # (x - 128) / 128, or x / 255
# In-model: light = flips and small shifts; full adds rotation and zoom; strong adds random erasing.
AUGMENTATIONS = ("none", "light", "full", "strong")
VALIDATION_SOURCES = ("PublicTest", "holdout")  # holdout: 10% of the Training rows
# Test-time augmentation: none, the mirrored face, or the mirrored face and four shifted crops of each.
TTA_MODES = ("none", "flip", "crops")
WEIGHT_PRECISIONS = ("float32", "float16", "bfloat16")  # how finely a shipped model's weights are kept


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run. The defaults are the report's recipe (the ``seed`` preset)."""

    preset: str = "seed"
    # model
    input_size: int = 28
    filters: tuple[int, ...] = (16, 16)
    kernel_size: int = 5
    blocks: tuple[int, ...] = ()  # residual blocks per stage of filters (resnet preset; empty = one each)
    hidden_units: int = 64
    dropout: float = 0.0
    normalization: str = "report"
    augment: str = "none"  # on-the-fly augmentation inside the model, active only in training
    # offline preprocessing of the training split (the report's copies)
    flip: bool = True
    rotation: float = 10.0
    oversample_disgust: int = 4
    # optimisation
    optimizer: str = "sgd"
    learning_rate: float = 0.05
    schedule: str = "constant"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    class_weight: str = "none"
    batch_size: int = 32
    steps: int = 16_001
    eval_every: int = 500  # steps between validation passes and checkpoints
    keep_best: bool = False  # restore the weights with the best validation accuracy at the end
    patience: int = 0  # evaluations without improvement before stopping early; 0 = never
    validation: str = "PublicTest"
    max_train_faces: int = 0  # 0 = all; a small number makes a quick demo or test run
    init_from: str = ""  # a model folder whose weights start the run (same preset and sizes)
    mixup: float = 0.0  # Beta(a, a) of mixup between the faces of a batch (and their targets); 0 = off
    # momentum of a moving average of the weights, which replaces them before each validation pass (so
    # the curves, the best checkpoint and the finished model are the average); 0 = off
    ema: float = 0.0
    # Training faces also shown as the photo path frames them (fer_core.synthetic): this many placed in
    # synthetic photos, found by the detector and aligned, added to the training faces; 0 = off
    photo_crops: int = 0
    # knowledge distillation (fer_core.distill): a model folder whose probabilities are extra targets
    teacher: str = ""
    distill_temperature: float = 4.0
    distill_weight: float = 0.7  # of the teacher's term; the rest is the labels' cross-entropy
    tta: str = "none"  # how the saved model predicts by default (its card's metrics use it too)
    seed: int = 0

    def __post_init__(self) -> None:
        choices = {
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
            "class_weight": CLASS_WEIGHTS,
            "normalization": NORMALIZATIONS,
            "augment": AUGMENTATIONS,
            "validation": VALIDATION_SOURCES,
            "tta": TTA_MODES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        positive = ("input_size", "kernel_size", "batch_size", "steps", "eval_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.filters or min(self.filters) < 1:
            raise ValueError(f"filters must be positive channel counts, got {self.filters}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.photo_crops < 0:
            raise ValueError(f"photo_crops must be 0 (off) or a number of faces, got {self.photo_crops}")
        if self.mixup < 0:
            raise ValueError(f"mixup must be 0 (off) or a positive Beta parameter, got {self.mixup}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be 0 (off) or a momentum below 1, got {self.ema}")
        if self.distill_temperature <= 0:
            raise ValueError(f"distill_temperature must be positive, got {self.distill_temperature}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"distill_weight must be in [0, 1], got {self.distill_weight}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        _ = self.preprocess  # validates the preprocessing settings too

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig(
            size=self.input_size,
            flip=self.flip,
            rotation=self.rotation,
            oversample_disgust=self.oversample_disgust,
        )

    @property
    def epochs(self) -> int:
        """Keras epochs: one per evaluation interval."""
        return -(-self.steps // self.eval_every)

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.steps // self.epochs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from JSON-like values, ignoring unknown keys and turning lists back into tuples."""
        known = {f.name for f in fields(cls)}
        clean = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}
        if isinstance(clean.get("augment"), bool):  # cards written before augmentation had levels
            clean["augment"] = "full" if clean["augment"] else "none"
        return cls(**clean)
