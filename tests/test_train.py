"""Training: real Keras fits on real faces, curves, resume after an interruption, presets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_core.cli import main as cli_main
from fer_core.config import TrainConfig
from fer_core.data import load_dataset
from fer_core.models import PRESETS, build_model, preset_config
from fer_core.preprocess import prepare
from fer_core.train import STOP_FILE, class_weights, park, read_curves, train

TINY = {"steps": 60, "eval_every": 20, "batch_size": 16, "max_train_faces": 400}


@pytest.fixture(scope="module")
def sample(sample_csv, spark):
    return load_dataset(sample_csv)


def test_seed_preset_is_the_reports_network():
    model = build_model(preset_config("seed"))
    convs = [layer for layer in model.layers if layer.name.startswith("conv")]
    assert [c.filters for c in convs] == [16, 16]
    assert all(c.kernel_size == (5, 5) and c.padding == "same" for c in convs)
    assert model.input_shape == (None, 28, 28)
    assert model.get_layer("fc").units == 64
    assert model.output_shape == (None, 7)
    config = preset_config("seed")
    assert (config.optimizer, config.learning_rate, config.batch_size, config.steps) == (
        "sgd",
        0.05,
        32,
        16_001,
    )
    assert (config.flip, config.rotation, config.oversample_disgust) == (True, 10.0, 4)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_outputs_probabilities(name):
    config = preset_config(name)
    model = build_model(config)
    faces = np.random.default_rng(0).integers(
        0, 256, (2, config.input_size, config.input_size), dtype=np.uint8
    )
    probabilities = model.predict(faces, verbose=0)
    assert probabilities.shape == (2, 7)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_config_validates_and_overrides():
    assert preset_config("seed", dropout=0.5).dropout == 0.5
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("resnet-9000")
    config = preset_config("fast")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_balanced_class_weights_even_out_the_classes():
    labels = np.array([0] * 6 + [1] * 2 + [3] * 4)
    weights = class_weights(labels)
    counts = np.bincount(labels, minlength=7)
    assert all(weights[k] * counts[k] == pytest.approx(len(labels) / 3) for k in (0, 1, 3))
    assert weights[2] == 0.0


def test_training_learns_and_writes_curves(sample, tmp_path):
    config = preset_config("seed", **{**TINY, "steps": 120, "learning_rate": 0.02})
    prepared = prepare(sample, config.preprocess)
    result = train(config, prepared, tmp_path / "run")

    assert result.steps_done == config.steps and not result.stopped
    curves = read_curves(tmp_path / "run")
    assert curves["val_accuracy"].notna().sum() == config.epochs
    assert curves["minibatch_accuracy"].dropna().between(0, 1).all()
    assert curves["step"].is_monotonic_increasing
    validation = prepared.splits["PublicTest"]
    accuracy = (result.model.predict(validation.images, verbose=0).argmax(1) == validation.labels).mean()
    chance = np.bincount(validation.labels).max() / len(validation)
    assert accuracy > chance - 0.05  # it trained without diverging
    assert not (tmp_path / "run" / "backup").exists()


def test_interrupted_run_resumes_where_it_stopped(sample, tmp_path):
    config = preset_config("seed", **TINY)
    prepared = prepare(sample, config.preprocess)
    run = tmp_path / "run"

    def stop_after_first_evaluation(progress):
        if progress.val_accuracy is not None:
            (run / STOP_FILE).touch()

    first = train(config, prepared, run, progress=stop_after_first_evaluation)
    assert first.stopped and first.steps_done < config.steps
    assert (run / "backup").exists() and not (run / STOP_FILE).exists()

    resumed = train(config, prepared, run)
    assert not resumed.stopped
    assert resumed.steps_done == config.steps
    curves = read_curves(run)
    assert curves["step"].max() == config.steps and curves["step"].is_unique
    assert curves["val_accuracy"].notna().sum() >= config.epochs

    with pytest.raises(ValueError, match="prepared with"):
        train(preset_config("fast", **TINY), prepared, tmp_path / "other")


def test_a_parked_run_resumes_elsewhere_from_its_smaller_checkpoint(sample, tmp_path, capsys):
    import h5py

    config = preset_config("fast", **TINY)
    prepared = prepare(sample, config.preprocess)
    run, parked_run = tmp_path / "run", tmp_path / "parked-run"

    def stop_after_first_evaluation(progress):
        if progress.val_accuracy is not None:
            (run / STOP_FILE).touch()

    first = train(config, prepared, run, progress=stop_after_first_evaluation)
    with pytest.raises(ValueError, match="no checkpoint"):
        park(tmp_path / "nothing", parked_run)
    parked = park(run, parked_run)
    assert cli_main(["park", str(run), "--out", str(tmp_path / "by-cli")]) == 0
    assert json.loads(capsys.readouterr().out)["megabytes"] > 0
    assert cli_main(["park", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert sorted(p.name for p in parked_run.iterdir()) == ["config.json", "curves.csv", "parked"]

    with (
        h5py.File(run / "backup" / "latest.weights.h5") as full,
        h5py.File(parked / "latest.weights.h5") as small,
    ):
        names = []
        full.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        moments = [n for n in names if n.startswith("optimizer") and full[n].shape and full[n].size > 1]
        assert moments, "AdamW's moments are in the checkpoint"
        for name in names:
            if name in moments:
                assert small[name].dtype == np.uint16  # bfloat16 bits
            else:
                assert np.array_equal(small[name][()], full[name][()]), name
    assert (parked / "latest.weights.h5").stat().st_size < 0.75 * (
        run / "backup" / "latest.weights.h5"
    ).stat().st_size
    with h5py.File(parked / "best.weights.h5") as best:
        assert "optimizer" not in best

    steps_seen = []
    resumed = train(config, prepared, parked_run, progress=lambda progress: steps_seen.append(progress.step))
    assert resumed.steps_done == config.steps and not resumed.stopped
    assert min(steps_seen) > first.steps_done  # it went on from the parked step, not from the start
    assert read_curves(parked_run)["step"].max() == config.steps
    assert not (parked_run / "parked").exists() and not (parked_run / "backup").exists()


def test_init_from_starts_with_a_saved_models_weights(sample, tmp_path):
    from fer_core.artifacts import MODELS_DIR, load_model

    start = MODELS_DIR / "vgg2"  # one network: the default is an ensemble, which no run starts from
    shipped = load_model(start)
    config = preset_config(
        shipped.card["preset"],
        **{
            **shipped.config.to_dict(),
            **TINY,
            "steps": 1,
            "eval_every": 1,
            "learning_rate": 1e-9,
            "init_from": str(start),
        },
    )
    result = train(config, prepare(sample, config.preprocess), tmp_path / "warm")
    # Trainable weights only: batch norm's moving statistics move with the one training step.
    pairs = zip(result.model.trainable_weights, shipped.model.trainable_weights, strict=True)
    for trained, original in pairs:
        assert np.allclose(trained.numpy(), original.numpy(), atol=1e-5)

    other = preset_config("fast", **{**TINY, "init_from": str(start)})
    with pytest.raises(ValueError, match="another architecture"):
        train(other, prepare(sample, other.preprocess), tmp_path / "mismatch")


def test_soften_is_the_softmax_of_the_logits_over_the_temperature():
    from fer_core.distill import soften

    logits = np.random.default_rng(0).normal(0, 3, (5, 7)).astype(np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = np.exp(logits / 4) / np.exp(logits / 4).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(soften(probabilities, 4.0), expected, rtol=1e-4)
    np.testing.assert_allclose(soften(probabilities, 1.0), probabilities, rtol=1e-4)


def test_distillation_loss_is_zero_only_where_the_student_matches():
    from fer_core.distill import distillation_loss, soften

    teacher = np.array([[0.7, 0.05, 0.05, 0.1, 0.05, 0.03, 0.02]], np.float32)
    targets = np.concatenate([np.eye(7, dtype=np.float32)[[0]], soften(teacher, 4.0)], axis=1)
    loss = distillation_loss(4.0, weight=1.0)  # the teacher's term alone
    assert float(np.asarray(loss(targets, teacher))[0]) == pytest.approx(0.0, abs=1e-5)
    assert float(np.asarray(loss(targets, teacher[:, ::-1].copy()))[0]) > 0.1


def test_distillation_with_mixup_and_erasing_trains_and_caches_the_teacher(sample, tmp_path):
    from fer_core.artifacts import MODELS_DIR
    from fer_core.distill import TARGETS_FILE

    config = preset_config(
        "fast",
        **{**TINY, "teacher": str(MODELS_DIR / "fast"), "mixup": 0.2, "augment": "strong"},
    )
    assert "aug_erase" in {layer.name for layer in build_model(config).layers}
    prepared = prepare(sample, config.preprocess)
    run = tmp_path / "student"
    result = train(config, prepared, run)
    assert result.steps_done == config.steps
    assert (run / TARGETS_FILE).is_file()
    stored = np.load(run / TARGETS_FILE)
    assert stored["train"].shape == (TINY["max_train_faces"], 7)
    np.testing.assert_allclose(stored["train"].sum(axis=1), 1.0, atol=1e-4)
    curves = read_curves(run)
    assert curves["val_accuracy"].dropna().between(0, 1).all()
    assert np.isfinite(curves["minibatch_loss"].dropna()).all()


def test_a_distilled_model_card_names_its_teacher_and_its_members():
    from fer_core.artifacts import DEFAULT_MODEL, read_card
    from fer_core.pipeline import teacher_entry

    assert teacher_entry(preset_config("lite")) is None
    entry = teacher_entry(preset_config("lite", teacher=str(DEFAULT_MODEL), distill_temperature=3.0))
    card = read_card(DEFAULT_MODEL)
    assert entry["weights_sha256"] == card["weights_sha256"]
    assert entry["tta"] == card["preprocessing"]["tta"]
    members = [member["name"] for member in card["training"].get("members", [])]
    assert entry.get("members", []) == members
    assert entry["temperature"] == 3.0


def test_a_moving_average_of_the_weights_is_what_the_run_validates_and_ends_with(sample, tmp_path):
    """With ``ema`` the weights are replaced by their running average before every validation pass: with
    a momentum near 1 the finished network stays near where it started, while plain steps move it."""
    from fer_core.artifacts import MODELS_DIR, load_model

    start = load_model(MODELS_DIR / "fast").model.get_weights()
    moved = {}
    for ema in (0.0, 0.999):
        config = preset_config("fast", **{**TINY, "init_from": str(MODELS_DIR / "fast"), "ema": ema})
        result = train(config, prepare(sample, config.preprocess), tmp_path / f"ema-{ema}")
        assert result.steps_done == config.steps
        weights = result.model.get_weights()
        moved[ema] = sum(
            float(np.abs(after - before).sum()) for after, before in zip(weights, start, strict=True)
        )
    assert 0 < moved[0.999] < 0.2 * moved[0.0], moved
    with pytest.raises(ValueError, match="ema"):
        preset_config("fast", ema=1.0)
