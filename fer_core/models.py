"""The model registry: each preset is a Keras Functional builder plus the recipe it trains with."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fer_core.config import TrainConfig
from fer_core.emotions import NUM_CLASSES


@dataclass(frozen=True)
class Preset:
    """A named architecture (``build``) and the settings it trains with (``defaults``)."""

    name: str
    description: str
    build: Callable[[TrainConfig], Any]
    defaults: dict[str, Any] = field(default_factory=dict)


def _normalize(x, config: TrainConfig):
    import keras

    if config.normalization == "report":
        return keras.layers.Rescaling(1 / 128, offset=-1.0, name="normalize")(x)  # (x - 128) / 128
    return keras.layers.Rescaling(1 / 255, name="normalize")(x)


def _inputs(config: TrainConfig):
    """uint8-valued faces (N, size, size) in, as float with a channel axis, normalised, augmented."""
    import keras

    inputs = keras.Input((config.input_size, config.input_size), name="faces")
    x = keras.layers.Reshape((config.input_size, config.input_size, 1), name="channel")(inputs)
    x = _normalize(x, config)
    if config.augment != "none":
        # Active only in training, so prediction sees the face unchanged.
        shift = 0.1 if config.augment == "full" else 0.06
        x = keras.layers.RandomFlip("horizontal", seed=config.seed, name="aug_flip")(x)
        x = keras.layers.RandomTranslation(
            shift, shift, fill_mode="nearest", seed=config.seed, name="aug_shift"
        )(x)
    if config.augment in ("full", "strong"):
        x = keras.layers.RandomRotation(10 / 360, fill_mode="nearest", seed=config.seed, name="aug_rotate")(x)
        x = keras.layers.RandomZoom(0.1, fill_mode="nearest", seed=config.seed, name="aug_zoom")(x)
    if config.augment == "strong":
        # Random erasing (Zhong et al. 2017): half the faces lose a patch of 2-25% of their area to noise.
        low = -1.0 if config.normalization == "report" else 0.0
        x = keras.layers.RandomErasing(
            (0.5, 0.5), scale=(0.02, 0.25), value_range=(low, 1.0), seed=config.seed, name="aug_erase"
        )(x)
    return inputs, x


def _classifier(x, config: TrainConfig):
    import keras

    if config.dropout:
        x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    logits = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.layers.Softmax(name="probabilities")(logits)


def build_seed(config: TrainConfig):
    """The 2017 report's network: two 5x5 conv + ReLU + 2x2 max-pool blocks, dense 64, 7 outputs."""
    import keras

    inputs, x = _inputs(config)
    for index, filters in enumerate(config.filters, start=1):
        x = keras.layers.Conv2D(filters, config.kernel_size, padding="same", name=f"conv{index}")(x)
        x = keras.layers.ReLU(name=f"hidden{index}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(config.hidden_units, activation="relu", name="fc")(x)
    return keras.Model(inputs, _classifier(x, config), name="seed")


def build_vgg(config: TrainConfig):
    """VGG-style: per stage two 3x3 conv + batch norm + ReLU, then 2x2 max-pool; global pooling head.

    ``filters`` gives the width of each stage; the conv layers are named conv1..convN so that the
    feature-map views find them.
    """
    import keras

    inputs, x = _inputs(config)
    index = 0
    for stage, filters in enumerate(config.filters, start=1):
        for _ in range(2):
            index += 1
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{index}")(x)
            x = keras.layers.BatchNormalization(name=f"bn{index}")(x)
            x = keras.layers.ReLU(name=f"hidden{index}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(config.hidden_units, use_bias=False, name="fc")(x)
    x = keras.layers.BatchNormalization(name="fc_bn")(x)
    x = keras.layers.ReLU(name="fc_relu")(x)
    return keras.Model(inputs, _classifier(x, config), name="vgg")


def build_resnet(config: TrainConfig):
    """Residual network (pre-ResNet-18 style basic blocks) with a global pooling head.

    A 3x3 stem at full resolution, then one stage per entry of ``filters`` with ``blocks`` residual
    blocks each (one each if ``blocks`` is empty): the first stage keeps the resolution, every later
    stage halves it in its first block.
    Conv layers are named conv1..convN (in order) so that the feature-map views find them.
    """
    import keras

    counter = iter(range(1, 1000))

    def conv_bn(x, filters: int, stride: int = 1, kernel: int = 3, relu: bool = True):
        index = next(counter)
        x = keras.layers.Conv2D(
            filters, kernel, strides=stride, padding="same", use_bias=False, name=f"conv{index}"
        )(x)
        x = keras.layers.BatchNormalization(name=f"bn{index}")(x)
        return keras.layers.ReLU(name=f"hidden{index}")(x) if relu else x

    def block(x, filters: int, stride: int):
        shortcut = x
        y = conv_bn(x, filters, stride)
        y = conv_bn(y, filters, relu=False)
        if stride != 1 or x.shape[-1] != filters:
            # A 1x1 projection where the shape changes, as in the original ResNet.
            shortcut = conv_bn(x, filters, stride, kernel=1, relu=False)
        return keras.layers.ReLU()(keras.layers.Add()([shortcut, y]))

    inputs, x = _inputs(config)
    x = conv_bn(x, config.filters[0])
    blocks = config.blocks or (1,) * len(config.filters)
    if len(blocks) != len(config.filters):
        raise ValueError(f"blocks needs one count per stage of filters {config.filters}, got {blocks}")
    for stage, (filters, repeats) in enumerate(zip(config.filters, blocks, strict=True)):
        for repeat in range(repeats):
            x = block(x, filters, stride=2 if stage > 0 and repeat == 0 else 1)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, _classifier(x, config), name="resnet")


_MODERN = {  # shared by the presets that train with on-the-fly augmentation instead of copies
    "flip": False,
    "rotation": 0.0,
    "oversample_disgust": 1,
    "augment": "full",
    "optimizer": "adamw",
    "schedule": "cosine",
    "weight_decay": 1e-4,
    "label_smoothing": 0.1,
    "normalization": "unit",
    "keep_best": True,
    "kernel_size": 3,
}

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("seed", "The 2017 report's CNN and recipe: 28 x 28, SGD 0.05, 16,001 steps.", build_seed),
        Preset(
            "fast",
            "Three-stage VGG at 40 x 40 with augmentation: about 10 minutes of training on 2 CPU cores.",
            build_vgg,
            {
                **_MODERN,
                "input_size": 40,
                "filters": (32, 64, 128),
                "hidden_units": 128,
                "augment": "light",
                "dropout": 0.2,
                "learning_rate": 3e-3,
                "batch_size": 64,
                "steps": 4_500,
                "eval_every": 500,
            },
        ),
        Preset(
            "vgg",
            "Four-stage VGG at 48 x 48 with batch norm, augmentation and label smoothing.",
            build_vgg,
            {
                **_MODERN,
                "input_size": 48,
                "filters": (32, 64, 128, 256),
                "hidden_units": 256,
                "dropout": 0.4,
                "learning_rate": 2e-3,
                "batch_size": 64,
                "steps": 24_000,
                "eval_every": 480,
            },
        ),
        Preset(
            "lite",
            "vgg's network, one of it, no test-time augmentation: the model of video, live camera and batch. "
            "Meant to start from a trained vgg (--init-from) and learn from an ensemble (--teacher) with "
            "vgg's augmentation, no mixup; then its batch norm refitted (ship --refit-bn) or a short "
            "fine-tune on plain faces (--augment none).",
            build_vgg,
            {
                **_MODERN,
                "input_size": 48,
                "filters": (32, 64, 128, 256),
                "hidden_units": 256,
                "augment": "full",
                "dropout": 0.4,
                "learning_rate": 1e-3,
                "batch_size": 64,
                "steps": 9_600,
                "eval_every": 480,
            },
        ),
        Preset(
            "resnet",
            "Residual network at 48 x 48 (basic blocks), the VGG's recipe: a diverse ensemble member.",
            build_resnet,
            {
                **_MODERN,
                "input_size": 48,
                "filters": (32, 64, 128, 256),
                "blocks": (1, 1, 1, 1),
                "dropout": 0.3,
                "learning_rate": 2e-3,
                "weight_decay": 5e-4,
                "batch_size": 64,
                "steps": 24_000,
                "eval_every": 480,
            },
        ),
    )
}


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` of preset ``name``, with any setting overridden."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = {**PRESETS[name].defaults, **overrides, "preset": name}
    return dataclasses.replace(TrainConfig(), **values)


def build_model(config: TrainConfig):
    """The untrained Keras model for ``config.preset``, with ``config``'s settings."""
    if config.preset not in PRESETS:
        raise ValueError(f"unknown preset {config.preset!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[config.preset].build(config)


def build_ensemble(members: list) -> Any:
    """One Keras model that averages the probabilities of ``members`` (trained models, same input).

    The members keep their layers, named ``member_1``, ``member_2``, ...; feature maps are read
    from the first.
    """
    import keras

    for member in members:
        if any(layer.name.startswith("member_") for layer in member.layers):
            raise ValueError(f"{member.name!r} is itself an ensemble: name the networks it averages instead")
    shapes = {tuple(member.input_shape[1:]) for member in members}
    if len(shapes) != 1:
        raise ValueError(f"an ensemble's members need the same input shape, got {sorted(shapes)}")
    inputs = keras.Input(shape=shapes.pop(), name="faces")
    outputs = []
    for number, member in enumerate(members, start=1):
        renamed = keras.Model(
            member.inputs[0], member.outputs[0], name=f"member_{number}"
        )  # shares the layers
        outputs.append(renamed(inputs))
    return keras.Model(inputs, keras.layers.Average(name="average")(outputs), name="ensemble")
