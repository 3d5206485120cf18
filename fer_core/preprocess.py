"""Preprocessing as in the report: area resize, flip and rotation copies, disgust oversampling (on Spark)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fer_core.data import Dataset, FaceSet, cache_dir, cache_key_for, read_faces_parquet
from fer_core.emotions import EMOTIONS, FACE_SIZE, SPLITS

DISGUST = EMOTIONS.index("disgust")
PREPROCESS_VERSION = "1"


@dataclass(frozen=True)
class PreprocessConfig:
    """Offline preprocessing of the training split (the evaluation splits are only resized)."""

    size: int = FACE_SIZE  # side of the square input, resized with area interpolation
    flip: bool = False  # add a horizontally flipped copy of each training face
    rotation: float = 0.0  # degrees; > 0 adds copies rotated by +angle and -angle
    oversample_disgust: int = 1  # repeat disgust training faces this many times in all

    def __post_init__(self) -> None:
        if not 8 <= self.size <= 256:
            raise ValueError(f"size must be between 8 and 256 pixels, got {self.size}")
        if not 0.0 <= self.rotation <= 90.0:
            raise ValueError(f"rotation must be between 0 and 90 degrees, got {self.rotation}")
        if self.oversample_disgust < 1:
            raise ValueError(f"oversample_disgust must be at least 1, got {self.oversample_disgust}")

    @property
    def is_identity(self) -> bool:
        return self == PreprocessConfig()

    @property
    def copies(self) -> int:
        """Training copies made of each face before oversampling."""
        return (1 + self.flip) + (2 if self.rotation > 0 else 0)


def resize_faces(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 faces (N, H, W) to (N, size, size) with area interpolation (the report's choice)."""
    import cv2

    if images.ndim != 3:
        raise ValueError(f"expected faces of shape (N, H, W), got {images.shape}")
    if images.shape[1:] == (size, size):
        return images
    out = np.empty((len(images), size, size), np.uint8)
    for index, image in enumerate(images):
        out[index] = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return out


def rotate_faces(images: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate uint8 faces (N, H, W) about their centre, replicating the border."""
    import cv2

    height, width = images.shape[1:]
    matrix = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), degrees, 1.0)
    return (
        np.stack(
            [
                cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
                for image in images
            ]
        )
        if len(images)
        else images.copy()
    )


def augment_copies(
    images: np.ndarray, labels: np.ndarray, config: PreprocessConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Originals, then a flipped copy, then copies rotated by +/- ``rotation``; then oversampling."""
    parts = [images]
    if config.flip:
        parts.append(images[:, :, ::-1])
    if config.rotation > 0:
        parts += [rotate_faces(images, config.rotation), rotate_faces(images, -config.rotation)]
    images = np.concatenate(parts)
    labels = np.tile(labels, len(parts))
    if config.oversample_disgust > 1:
        extra = labels == DISGUST
        images = np.concatenate([images] + [images[extra]] * (config.oversample_disgust - 1))
        labels = np.concatenate([labels] + [labels[extra]] * (config.oversample_disgust - 1))
    return np.ascontiguousarray(images), labels.astype(np.int64)


def preprocess_faces(
    images: np.ndarray, labels: np.ndarray, config: PreprocessConfig, training: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Resize, and for the training split add the augmented copies."""
    images = resize_faces(images, config.size)
    if training:
        return augment_copies(images, labels, config)
    return images, labels.astype(np.int64)


@dataclass(frozen=True)
class PreparedData:
    """Faces ready for a model of ``config.size``, per split, with the dataset they came from."""

    dataset: Dataset
    config: PreprocessConfig
    splits: dict[str, FaceSet]


def prepare(
    dataset: Dataset,
    config: PreprocessConfig,
    *,
    spark_master: str | None = None,
    use_cache: bool = True,
) -> PreparedData:
    """Run the preprocessing on Spark, cached as Parquet keyed by data fingerprint and settings."""
    if config.is_identity:
        return PreparedData(dataset=dataset, config=config, splits=dataset.splits)
    key = cache_key_for("prepared", PREPROCESS_VERSION, dataset.cache_key, asdict(config))
    parquet = cache_dir() / f"prepared-{key}.parquet"
    if not (use_cache and parquet.exists()):
        _run_prepare(dataset, config, spark_master, parquet)
    return PreparedData(dataset=dataset, config=config, splits=read_faces_parquet(parquet, config.size))


def _run_prepare(dataset: Dataset, config: PreprocessConfig, spark_master, parquet: Path) -> None:
    from fer_core.spark import get_spark

    spark = get_spark(spark_master)
    settings = json.dumps(asdict(config))

    def transform(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        batch_config = PreprocessConfig(**json.loads(settings))
        for batch in batches:
            for split in SPLITS:
                part = batch[batch["split"] == split]
                if part.empty:
                    continue
                images = np.frombuffer(b"".join(part["pixels"]), np.uint8)
                images = images.reshape(-1, FACE_SIZE, FACE_SIZE)
                images, labels = preprocess_faces(
                    images, part["label"].to_numpy(), batch_config, training=split == "Training"
                )
                yield pd.DataFrame(
                    {
                        "split": split,
                        "label": labels.astype(np.int32),
                        "pixels": [image.tobytes() for image in images],
                    }
                )

    faces = spark.read.parquet(dataset.cache_path)
    faces = faces.repartition(max(2, spark.sparkContext.defaultParallelism))
    tmp = parquet.with_name(parquet.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    faces.mapInPandas(transform, "split string, label int, pixels binary").write.parquet(str(tmp))
    shutil.rmtree(parquet, ignore_errors=True)
    tmp.rename(parquet)
