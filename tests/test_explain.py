"""Grad-CAM: where the network looked, for single models and ensembles, and the CLI's overlays."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core.artifacts import MODELS_DIR, LoadedModel, load_model
from fer_core.explain import grad_cam, overlay
from fer_core.models import build_ensemble


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def faces(sample_lines):
    return np.stack(
        [np.array(line.split(",")[1].split(), np.uint8).reshape(48, 48) for line in sample_lines[:6]]
    )


def test_maps_have_the_faces_shape_and_range(model, faces):
    maps = grad_cam(model, faces)
    assert maps.shape == faces.shape and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1
    assert (maps.reshape(len(faces), -1).max(axis=1) > 0.99).sum() >= len(faces) - 1  # scaled to peak 1


def test_the_map_depends_on_the_emotion_asked_for(model, faces):
    happy, angry = grad_cam(model, faces, 3), grad_cam(model, faces, 0)
    assert not np.allclose(happy, angry, atol=0.05)
    with pytest.raises(ValueError, match="indices 0..6"):
        grad_cam(model, faces, 7)


def test_an_ensembles_map_is_its_members_mean(faces):
    network = load_model(MODELS_DIR / "vgg2")  # one network (the default is an ensemble itself)
    twice = LoadedModel(model=build_ensemble([network.model] * 2), card=network.card, path=network.path)
    assert np.allclose(grad_cam(twice, faces, 3), grad_cam(network, faces, 3), atol=1e-4)


def test_overlay_is_an_rgb_picture_of_the_face(model, faces):
    picture = overlay(faces[0], grad_cam(model, faces[:1])[0], size=96)
    assert picture.shape == (96, 96, 3) and picture.dtype == np.uint8
    with pytest.raises(ValueError, match="differ in shape"):
        overlay(faces[0], np.zeros((12, 12)))


def test_predict_explain_writes_one_overlay_per_face(photos, tmp_path):
    import subprocess
    import sys

    from PIL import Image

    done = subprocess.run(
        [sys.executable, "-m", "fer_core", "predict", "--explain", str(tmp_path / "cams"),
         str(photos / "multi_face.jpg"), str(photos / "single_face.jpg"), str(photos / "no_face.jpg")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    written = sorted((tmp_path / "cams").glob("*.png"))
    assert len(written) == 6 and "6 Grad-CAM overlays" in done.stderr
    assert {path.name.rsplit("_face", 1)[0] for path in written} == {"multi_face", "single_face"}
    assert Image.open(written[0]).size == (192, 192)
