"""Batch-norm statistics re-estimated on plain faces, and `ship --refit-bn` on the real data."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest

from fer_core.artifacts import MODELS_DIR, LoadedModel, load_model, read_card, write_card
from fer_core.batchnorm import refit_batch_norm
from fer_core.data import load_dataset
from fer_core.models import build_model, preset_config
from fer_core.pipeline import _soup, evaluate_model, ship_model


@pytest.fixture(scope="module")
def faces(sample_csv) -> np.ndarray:
    images = load_dataset(sample_csv).splits["Training"].images
    return images[: len(images) // 64 * 64]  # whole batches of 64, so the averages are exact


def small_vgg(augment: str):
    config = preset_config("vgg", filters=(8, 16), hidden_units=16, input_size=48, augment=augment)
    return build_model(config)


def test_the_statistics_become_those_of_the_plain_faces(faces):
    model = small_vgg("strong")  # flips, shifts, turns, zooms and erases in training mode
    before = model.get_weights()
    assert refit_batch_norm(model, faces, batch_size=64) == 5  # four conv layers and the dense one
    # The first layer's inputs are conv1 of the plain faces: its mean over every face is the batch
    # means' average exactly, and its variance the batch variances' average nearly.
    conv1 = keras.Model(model.input, model.get_layer("conv1").output)
    outputs = np.asarray(conv1(faces.astype(np.float32), training=False)).reshape(-1, 8)
    mean, variance = model.get_layer("bn1").moving_mean, model.get_layer("bn1").moving_variance
    np.testing.assert_allclose(np.asarray(mean), outputs.mean(axis=0), rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(np.asarray(variance), outputs.var(axis=0), rtol=0.05)
    # Only the moving statistics changed; the augmentation layers are still in the model.
    changed = [
        name
        for name, old, new in zip(names(model), before, model.get_weights(), strict=True)
        if not np.array_equal(old, new)
    ]
    assert changed and all(name.endswith(("moving_mean", "moving_variance")) for name in changed)
    assert any(layer.name == "aug_erase" for layer in model.layers)


def names(model) -> list[str]:
    return [variable.path for layer in model.layers for variable in layer.weights]


def test_a_network_without_batch_norm_is_left_alone(faces):
    model = build_model(preset_config("seed"))
    before = model.get_weights()
    assert refit_batch_norm(model, faces[:, :28, :28]) == 0
    assert all(np.array_equal(old, new) for old, new in zip(before, model.get_weights(), strict=True))


def test_ship_refits_on_the_training_faces_and_records_it(tmp_path, full_csv, spark):
    out = tmp_path / "fast_bn"
    loaded = ship_model([MODELS_DIR / "fast"], out, name="fast_bn", tta="none", data=full_csv, refit_bn=True)
    refit = loaded.card["training"]["batch_norm_refit"]
    assert refit == {"model": "fast", "faces": 28709, "photo_crops": 0, "layers": 7}
    original = load_model(MODELS_DIR / "fast")
    for layer in original.model.layers:
        new = loaded.model.get_layer(layer.name).get_weights()
        old = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            assert np.array_equal(new[0], old[0]) and not np.array_equal(
                new[2], old[2]
            )  # gamma kept, mean new
        else:
            assert all(np.array_equal(a, b) for a, b in zip(new, old, strict=True))
    # The folder holds the refitted network: the card's figures are its own.
    report = evaluate_model(loaded, load_dataset(full_csv), "PublicTest")
    assert report.accuracy == pytest.approx(loaded.card["metrics"]["PublicTest"]["accuracy"], abs=1e-6)
    assert json.loads((out / "card.json").read_text())["training"]["batch_norm_refit"]["layers"] == 7


def test_a_soup_is_the_weighted_average_of_its_models():
    first, second = small_vgg("none"), small_vgg("none")
    second.set_weights([np.random.default_rng(1).normal(size=w.shape) for w in second.get_weights()])
    a, b = first.get_weights(), second.get_weights()
    members = [LoadedModel(model=m, card={}, path=MODELS_DIR) for m in (first, second)]
    soup = _soup(members, [1.0, 3.0])
    assert soup.model is first
    for mixed, x, y in zip(soup.model.get_weights(), a, b, strict=True):
        np.testing.assert_allclose(mixed, 0.25 * x + 0.75 * y, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="one weight"):
        _soup(members, [1.0])
    other = LoadedModel(model=build_model(preset_config("seed")), card={}, path=MODELS_DIR)
    with pytest.raises(ValueError, match="one architecture"):
        _soup([members[0], other], [0.5, 0.5])


def test_ship_a_soup_of_two_networks(tmp_path, full_csv, spark):
    loaded = ship_model(
        [MODELS_DIR / "fast", MODELS_DIR / "fast"],
        tmp_path / "soup",
        name="soup",
        tta="none",
        data=full_csv,
        soup=[0.5, 0.5],
    )
    assert [entry["weight"] for entry in loaded.card["training"]["soup"]] == [0.5, 0.5]
    assert loaded.card["training"]["batch_norm_refit"]["layers"] == 7  # always refitted after averaging
    assert "members" not in loaded.card["training"]  # one network, not an ensemble
    assert loaded.model.count_params() == load_model(MODELS_DIR / "fast").model.count_params()


def test_ship_refits_only_the_members_it_names(tmp_path, full_csv, spark):
    other = tmp_path / "fast_twin"
    shutil.copytree(MODELS_DIR / "fast", other)
    write_card(other, {**read_card(other), "name": "fast_twin"})
    with pytest.raises(ValueError, match="vgg, not among the models"):
        ship_model([MODELS_DIR / "fast", other], tmp_path / "no", name="no", tta="none", refit_bn=["vgg"])
    pair = ship_model(
        [MODELS_DIR / "fast", other],
        tmp_path / "pair",
        name="pair",
        tta="none",
        data=full_csv,
        refit_bn=["fast_twin"],
    )
    assert [entry["model"] for entry in pair.card["training"]["batch_norm_refit"]] == ["fast_twin"]
    original = load_model(MODELS_DIR / "fast").model.get_weights()
    first, second = (pair.model.get_layer(f"member_{number}").get_weights() for number in (1, 2))
    assert all(np.array_equal(kept, old) for kept, old in zip(first, original, strict=True))
    assert not all(np.array_equal(refitted, old) for refitted, old in zip(second, original, strict=True))
