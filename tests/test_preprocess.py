"""Preprocessing: area resize, augmentation copies, oversampling, and Spark agreeing with numpy."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core.data import load_dataset
from fer_core.preprocess import (
    DISGUST,
    PreprocessConfig,
    augment_copies,
    prepare,
    preprocess_faces,
    resize_faces,
    rotate_faces,
)


@pytest.fixture(scope="module")
def sample(sample_csv, spark):
    return load_dataset(sample_csv)


def test_resize_is_area_interpolation(sample):
    faces = sample.splits["Training"].images[:5]
    small = resize_faces(faces, 24)
    assert small.shape == (5, 24, 24) and small.dtype == np.uint8
    # Halving with area interpolation is the mean of each 2 x 2 block.
    blocks = faces.reshape(5, 24, 2, 24, 2).astype(np.float64).mean(axis=(2, 4))
    assert np.abs(small.astype(np.float64) - blocks).max() <= 0.5 + 1e-9


def test_resize_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        resize_faces(np.zeros((48, 48), np.uint8), 28)


def test_augment_copies_flip_rotate_and_oversample(sample):
    faces = sample.splits["Training"]
    config = PreprocessConfig(flip=True, rotation=10, oversample_disgust=4)
    images, labels = augment_copies(faces.images, faces.labels, config)

    n = len(faces)
    disgust = int((faces.labels == DISGUST).sum())
    assert len(images) == config.copies * n + 3 * config.copies * disgust
    assert np.array_equal(images[:n], faces.images)
    assert np.array_equal(images[n : 2 * n], faces.images[:, :, ::-1])
    assert np.array_equal(images[2 * n : 3 * n], rotate_faces(faces.images, 10))
    assert not np.array_equal(images[2 * n : 3 * n], faces.images)
    assert np.bincount(labels, minlength=7)[DISGUST] == 4 * config.copies * disgust


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="size"):
        PreprocessConfig(size=2)
    with pytest.raises(ValueError, match="oversample_disgust"):
        PreprocessConfig(oversample_disgust=0)


def _multiset(images, labels):
    return sorted(zip(labels.tolist(), (image.tobytes() for image in images), strict=True))


def test_spark_prepare_matches_the_numpy_functions(sample):
    config = PreprocessConfig(size=28, flip=True, rotation=10.0, oversample_disgust=4)
    prepared = prepare(sample, config, spark_master="local[2]")

    for split, faces in sample.splits.items():
        expected_images, expected_labels = preprocess_faces(
            faces.images, faces.labels, config, training=split == "Training"
        )
        got = prepared.splits[split]
        assert got.images.shape == expected_images.shape
        # Spark's partitions reorder the rows; compare as sorted multisets of (label, face bytes).
        assert _multiset(got.images, got.labels) == _multiset(expected_images, expected_labels)
