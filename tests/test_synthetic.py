"""Training faces framed as the photo path frames them: real sample faces placed in synthetic photos,
found by the real detector, aligned; cached; and used by a real training run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fer_core.data import load_dataset
from fer_core.models import preset_config
from fer_core.synthetic import cached_photo_crops, photo_crops


@pytest.fixture(scope="module")
def training(sample_csv, spark):
    dataset = load_dataset(sample_csv)
    return dataset, dataset.splits["Training"]


def test_photo_crops_are_the_placed_faces_found_and_aligned(training):
    _, faces = training
    crops, sources = photo_crops(faces, 40, seed=5)
    assert 0.85 * 40 <= len(crops) <= 40  # the detector finds nearly every placed face
    assert crops.images.shape[1:] == (48, 48) and crops.images.dtype == np.uint8
    chosen = np.random.default_rng(5).permutation(len(faces))[:40]
    assert np.isin(sources, chosen).all() and np.array_equal(crops.labels, faces.labels[sources])
    assert not np.array_equal(crops.images, faces.images[sources])  # reframed, not copied
    # Each crop shows its own face: it correlates with it better than with the other placed faces.
    flat = crops.images.reshape(len(crops), -1).astype(np.float64)
    placed = faces.images[chosen].reshape(40, -1).astype(np.float64)
    correlation = np.corrcoef(flat, placed)[: len(crops), len(crops) :]
    own = correlation[np.arange(len(crops)), [int(np.flatnonzero(chosen == s)[0]) for s in sources]]
    assert np.median(own) > 0.5 and np.median(own) > np.median(correlation) + 0.1, (own, correlation)


def test_photo_crops_are_cached_per_source_count_and_seed(training, tmp_path, monkeypatch):
    dataset, faces = training
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    first = cached_photo_crops(faces, 12, 1, dataset.cache_key)
    stored = list(Path(tmp_path).glob("photo-crops-*.npz"))
    assert len(stored) == 1
    again = cached_photo_crops(faces, 12, 1, dataset.cache_key)
    assert np.array_equal(first.images, again.images) and np.array_equal(first.labels, again.labels)
    cached_photo_crops(faces, 12, 2, dataset.cache_key)
    assert len(list(Path(tmp_path).glob("photo-crops-*.npz"))) == 2
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_training_run_learns_from_photo_crops_too(sample_csv, tmp_path):
    from fer_core.pipeline import train_model

    config = preset_config(
        "fast", steps=20, eval_every=10, batch_size=16, max_train_faces=200, photo_crops=24
    )
    loaded, result = train_model(config, tmp_path / "run", data=sample_csv)
    assert loaded.card["config"]["photo_crops"] == 24 and result.steps_done == 20
    assert list(Path(os.environ["FER_CACHE_DIR"]).glob("photo-crops-*.npz"))
    with pytest.raises(ValueError, match="photo_crops"):
        preset_config("fast", photo_crops=-1)
