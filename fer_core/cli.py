"""The command line: ``python -m fer_core COMMAND``, one per capability (``--help`` lists them)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing
from dataclasses import fields
from pathlib import Path

from fer_core.config import (
    AUGMENTATIONS,
    CLASS_WEIGHTS,
    NORMALIZATIONS,
    OPTIMIZERS,
    SCHEDULES,
    TTA_MODES,
    VALIDATION_SOURCES,
    WEIGHT_PRECISIONS,
    TrainConfig,
)
from fer_core.emotions import EMOTIONS, SPLITS
from fer_core.faces import ALIGNMENTS, DEFAULT_ALIGNMENT, DEFAULT_DETECTOR, DETECTORS

CHOICES = {
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "class_weight": CLASS_WEIGHTS,
    "normalization": NORMALIZATIONS,
    "validation": VALIDATION_SOURCES,
    "augment": AUGMENTATIONS,
    "tta": TTA_MODES,
}


class CliError(Exception):
    """Bad input: printed as one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose bad-option message is one ``error:`` line pointing at ``--help``, not the whole
    usage block; subcommands' parsers are of this class too."""

    subcommands: dict[str, argparse.ArgumentParser] = {}  # set by build_parser on the top parser

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if getattr(parsed, "command", None) == "serve":
            parsed.streamlit_options = extras  # serve hands them to `streamlit run`
        elif extras:  # argparse reports them from the top parser; point at the subcommand's --help
            owner = self.subcommands.get(getattr(parsed, "command", None), self)
            owner.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


# video and batch read many faces: they default to the one-network model without test-time augmentation
FAST_MODEL_HELP = "model folder (default: models/lite, one network, no TTA; else the default model)"


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="FER2013 .csv, .csv.gz or image folder (default: the shipped sample)")
    parser.add_argument("--spark-master", help="Spark master URL (default: $FER_SPARK_MASTER or local[*])")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="without a Usage column (0.2)")
    parser.add_argument("--validation-fraction", type=float, default=0.2, help="of the rest (0.2)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the stratified split (0)")


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`TrainConfig` field; unset options keep the preset's value."""
    from fer_core.models import PRESETS

    hints = typing.get_type_hints(TrainConfig)
    for item in fields(TrainConfig):
        flag = "--" + item.name.replace("_", "-")
        kind = hints[item.name]
        if item.name == "preset":
            parser.add_argument(flag, default="seed", choices=list(PRESETS), help="model preset (seed)")
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif kind == tuple[int, ...]:
            parser.add_argument(flag, type=_int_tuple, default=None, metavar="N,N,...")
        else:
            parser.add_argument(flag, type=kind, default=None, choices=CHOICES.get(item.name))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m fer_core", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    parser.subcommands = commands.choices

    stats = commands.add_parser("stats", help="rows per split and emotion, rejected rows by reason")
    _add_data_options(stats)
    stats.add_argument("--rejects", help="also write the rejected rows (reason, line) to this CSV")
    stats.add_argument("--json", action="store_true", help="print one JSON object")

    prepare = commands.add_parser("prepare", help="read and preprocess on Spark, cached as Parquet")
    _add_data_options(prepare)
    _add_train_options(prepare)
    prepare.add_argument("--json", action="store_true", help="print one JSON object")

    train = commands.add_parser("train", help="train a preset and save the model with its card")
    _add_data_options(train)
    _add_train_options(train)
    train.add_argument("--out", required=True, help="run folder; an interrupted run there resumes")
    train.add_argument("--restart", action="store_true", help="discard an interrupted run in --out")

    serve = commands.add_parser(
        "serve",
        help="start the dashboard (what `make app` runs): Spark, the default data and TensorFlow begin "
        "loading at server start, in the background",
        epilog="Other options go to `streamlit run`, e.g. --server.address 127.0.0.1 --server.headless true",
    )
    serve.add_argument("--port", type=int, default=8501, help="port to listen on (8501)")

    park = commands.add_parser(
        "park",
        help="copy an unfinished run's checkpoint, small enough to commit, to a folder where `train "
        "--out FOLDER` (same settings) resumes it on another machine",
    )
    park.add_argument("run", help="the run folder (train's --out)")
    park.add_argument("--out", required=True, help="folder to write, e.g. checkpoints/NAME")

    evaluate = commands.add_parser("evaluate", help="accuracy, per-emotion table, confusion matrix")
    _add_data_options(evaluate)
    evaluate.add_argument("--model", help="model folder (default: the project's default model)")
    evaluate.add_argument("--split", default="PrivateTest", choices=SPLITS)
    evaluate.add_argument(
        "--tta", choices=TTA_MODES, help="test-time augmentation (default: the model's own, in its card)"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")

    ship = commands.add_parser(
        "ship", help="save a trained model (or the average of several) with its TTA and a re-measured card"
    )
    ship.add_argument("models", nargs="+", metavar="MODEL", help="model folders; several make an ensemble")
    ship.add_argument("--out", required=True, help="model folder to write, e.g. models/NAME")
    ship.add_argument("--name", help="the name on the card (default: the folder's name)")
    ship.add_argument(
        "--tta", choices=TTA_MODES, default="none", help="test-time augmentation the model predicts with"
    )
    ship.add_argument(
        "--refit-bn",
        nargs="*",
        metavar="NAME",
        help="re-estimate each model's batch-norm statistics on its training faces without augmentation "
        "(given names, only those models')",
    )
    ship.add_argument(
        "--soup",
        type=_floats,
        metavar="W,W,...",
        help="one network: the models' weights averaged with these weights (one architecture, a common "
        "start), batch norm then refitted",
    )
    ship.add_argument(
        "--weights-precision",
        choices=WEIGHT_PRECISIONS,
        default="float32",
        help="round the weights to this precision before measuring and saving (stored as float32; the "
        "file shrinks by about 37%% at float16)",
    )
    _add_data_options(ship)  # the data the models were trained on

    export = commands.add_parser(
        "export",
        help="add an ONNX export (the fast prediction path), checked against Keras, to a model folder",
    )
    export.add_argument("model", help="model folder")
    _add_data_options(export)  # its PublicTest faces check the export

    predict = commands.add_parser("predict", help="emotions of the faces in photos")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--model", help="model folder (default: the project's default model)")
    predict.add_argument("--no-detect", action="store_true", help="each image is already a cropped face")
    predict.add_argument("--whole-if-none", action="store_true", help="no face found: use the whole image")
    predict.add_argument(
        "--detector", default=DEFAULT_DETECTOR, choices=DETECTORS, help=f"face detector ({DEFAULT_DETECTOR})"
    )
    predict.add_argument(
        "--upscale", type=float, default=1.0, help="enlarge photos first, for faces under ~20 px (2: ~15 px)"
    )
    predict.add_argument(
        "--alignment",
        default=DEFAULT_ALIGNMENT,
        choices=ALIGNMENTS,
        help=f"how each face is turned and framed ({DEFAULT_ALIGNMENT}; levelled_box levels the eyes fully)",
    )
    predict.add_argument("--explain", metavar="DIR", help="write a Grad-CAM overlay PNG per face into DIR")
    predict.add_argument(
        "--tta", choices=TTA_MODES, help="test-time augmentation (default: the model's own, in its card)"
    )
    predict.add_argument("--json", action="store_true", help="print a JSON list")

    _add_batch_parser(commands)
    _add_video_parser(commands)
    return parser


def _add_batch_parser(commands) -> None:
    batch = commands.add_parser(
        "batch", help="every face of a folder of photos, a FER2013 CSV or Parquet, scored on Spark"
    )
    batch.add_argument("input", metavar="INPUT", help="folder of photos (recursive), .csv/.csv.gz or Parquet")
    batch.add_argument("--out", required=True, help="a Parquet folder, or a .csv file; one row per face")
    batch.add_argument("--model", help=FAST_MODEL_HELP)
    batch.add_argument("--no-detect", action="store_true", help="each photo is already a cropped face")
    batch.add_argument("--whole-if-none", action="store_true", help="no face found: use the whole photo")
    batch.add_argument("--detector", choices=DETECTORS, help=f"face detector ({DEFAULT_DETECTOR})")
    batch.add_argument(
        "--tta", choices=TTA_MODES, help="test-time augmentation (default: the model's own, in its card)"
    )
    batch.add_argument("--image-column", help="a Parquet input's image column (default: image, content, ...)")
    batch.add_argument("--spark-master", help="Spark master URL (default: $FER_SPARK_MASTER or local[*])")
    batch.add_argument("--progress-json", metavar="FILE", help="also write the progress to FILE (dashboard)")
    batch.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def _add_video_parser(commands) -> None:
    from fer_core.faces import DEFAULT_DETECTOR, DETECTORS

    video = commands.add_parser(
        "video", help="emotions of the faces of a video over time: a CSV row per sampled frame and face"
    )
    video.add_argument("path", metavar="PATH", help="mp4/mov (H.264, HEVC), webm (VP8, VP9), avi (MPEG-4)")
    video.add_argument("--fps", type=float, default=5.0, help="frames read per second of video (5)")
    video.add_argument("--csv", metavar="OUT.csv", help="write the rows (raw probabilities) to this CSV")
    video.add_argument(
        "--smooth", type=float, default=0.0, metavar="SECONDS",
        help="also write smoothed probabilities (smooth_<emotion> columns), Gaussian over SECONDS (off)",
    )  # fmt: skip
    video.add_argument("--json", action="store_true", help="print the summary and every frame as JSON")
    video.add_argument("--annotated", metavar="OUT.webm", help="write a copy with the faces drawn (VP8 webm)")
    video.add_argument("--model", help=FAST_MODEL_HELP)
    video.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTORS, help=DEFAULT_DETECTOR)
    video.add_argument(
        "--tta", choices=TTA_MODES, help="test-time augmentation (default: the model's own; none is fastest)"
    )


def batch_config_to_args(config) -> list[str]:
    """The ``batch`` options that reproduce a :class:`fer_core.batch.BatchConfig` (the parser's inverse)."""
    args = []
    if config.model:
        args += ["--model", str(config.model)]
    if not config.detect:
        args.append("--no-detect")
    if config.whole_if_none:
        args.append("--whole-if-none")
    for flag, value in (("--detector", config.detector), ("--tta", config.tta)):
        if value:
            args += [flag, value]
    if config.image_column:
        args += ["--image-column", config.image_column]
    return args


def _split_config(args):
    from fer_core.data import SplitConfig

    return SplitConfig(args.test_fraction, args.validation_fraction, args.split_seed)


def _train_config(args) -> TrainConfig:
    from fer_core.models import preset_config

    given = {
        item.name: getattr(args, item.name)
        for item in fields(TrainConfig)
        if item.name != "preset" and getattr(args, item.name) is not None
    }
    return preset_config(args.preset, **given)


def config_to_args(config: TrainConfig) -> list[str]:
    """The ``train``/``prepare`` options that reproduce ``config`` exactly (the inverse of the parser)."""
    hints = typing.get_type_hints(TrainConfig)
    args = []
    for item in fields(TrainConfig):
        flag, value = "--" + item.name.replace("_", "-"), getattr(config, item.name)
        if hints[item.name] is bool:
            args.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):
            args += [flag, ",".join(map(str, value))]
        else:
            args += [flag, str(value)]
    return args


def _print_table(frame) -> None:
    print(frame.to_string())


def cmd_stats(args) -> None:
    from fer_core.data import load_dataset

    dataset = load_dataset(
        args.data, split_config=_split_config(args), spark_master=args.spark_master, rejects_path=args.rejects
    )
    counts = dataset.counts()
    if args.json:
        rows = {split: {name: int(counts.loc[name, split]) for name in EMOTIONS} for split in SPLITS}
        print(
            json.dumps(
                {
                    "source": dataset.source,
                    "rows": rows,
                    "total": int(counts.loc["total", "total"]),
                    "rejected": dataset.rejects,
                    "has_usage": dataset.has_usage,
                },
                indent=1,
            )
        )
        return
    print(f"source: {dataset.source}")
    _print_table(counts)
    print(f"rejected rows: {dataset.num_rejected}")
    for reason, count in sorted(dataset.rejects.items()):
        print(f"  {reason}: {count}")


def cmd_prepare(args) -> None:
    from fer_core.data import load_dataset
    from fer_core.preprocess import prepare

    config = _train_config(args)
    dataset = load_dataset(args.data, split_config=_split_config(args), spark_master=args.spark_master)
    prepared = prepare(dataset, config.preprocess, spark_master=args.spark_master)
    shapes = {split: list(faces.images.shape) for split, faces in prepared.splits.items()}
    if args.json:
        print(
            json.dumps(
                {
                    "source": dataset.source,
                    "preprocess": config.preprocess.__dict__,
                    "shapes": shapes,
                    "rejected": dataset.rejects,
                },
                indent=1,
            )
        )
        return
    print(f"source: {dataset.source} (rejected rows: {dataset.num_rejected})")
    for split, shape in shapes.items():
        print(f"  {split}: {shape[0]} faces of {shape[1]} x {shape[2]}")


def cmd_train(args) -> None:
    from fer_core.artifacts import staged
    from fer_core.pipeline import train_model
    from fer_core.train import Progress

    config = _train_config(args)
    progress_path = Path(args.out) / "progress.json"

    def report(progress: Progress) -> None:
        state = {
            "step": progress.step,
            "total_steps": progress.total_steps,
            "elapsed_s": round(progress.elapsed_s, 1),
            "eta_s": progress.eta_s,
            "status": "running",
        }
        with staged(progress_path) as temporary:  # the dashboard reads it while it is rewritten
            temporary.write_text(json.dumps(state))
        if progress.val_accuracy is not None:
            print(
                f"step {progress.step}/{progress.total_steps}  validation accuracy "
                f"{progress.val_accuracy:.4f}  ({progress.elapsed_s:.0f} s)",
                file=sys.stderr,
                flush=True,
            )

    loaded, result = train_model(
        config,
        args.out,
        data=args.data,
        split_config=_split_config(args),
        spark_master=args.spark_master,
        progress=report,
        restart=args.restart,
        announce=lambda line: print(line, file=sys.stderr, flush=True),
    )
    final = {
        "step": result.steps_done,
        "total_steps": config.steps,
        "elapsed_s": round(result.train_seconds, 1),
        "eta_s": 0,
        "status": "stopped" if result.stopped else "done",
    }
    with staged(progress_path) as temporary:
        temporary.write_text(json.dumps(final))
    metrics = loaded.card["metrics"]
    summary = {split: round(metrics[split]["accuracy"], 4) for split in metrics}
    print(
        json.dumps(
            {
                "model": str(loaded.path),
                "steps": result.steps_done,
                "stopped": result.stopped,
                "seconds": round(result.train_seconds, 1),
                "accuracy": summary,
            }
        )
    )


def cmd_evaluate(args) -> None:
    from fer_core.artifacts import load_model
    from fer_core.data import load_dataset
    from fer_core.pipeline import evaluate_model

    loaded = load_model(args.model)
    dataset = load_dataset(args.data, split_config=_split_config(args), spark_master=args.spark_master)
    report = evaluate_model(loaded, dataset, args.split, tta=args.tta)
    calibration = {"ece": report.ece, **loaded.calibration.to_dict()}
    if args.json:
        print(json.dumps({**report.to_dict(), "calibration": calibration}))
        return
    print(f"model: {loaded.path}  data: {dataset.source}  split: {args.split}")
    print(f"accuracy: {report.accuracy:.4f} on {report.n} faces")
    print(f"expected calibration error: {report.ece:.4f} (temperature {loaded.calibration.temperature:.3f})")
    _print_table(report.per_class().round(4))
    print("confusion matrix (rows true, columns predicted):")
    import pandas as pd

    _print_table(pd.DataFrame(report.confusion, index=EMOTIONS, columns=EMOTIONS))


def cmd_ship(args) -> None:
    from fer_core.pipeline import ship_model

    loaded = ship_model(
        args.models,
        args.out,
        name=args.name or Path(args.out).name,
        tta=args.tta,
        data=args.data,
        split_config=_split_config(args),
        spark_master=args.spark_master,
        refit_bn=True if args.refit_bn == [] else (args.refit_bn or False),
        soup=args.soup,
        precision=args.weights_precision,
    )
    metrics = loaded.card["metrics"]
    accuracy = {split: round(metrics[split]["accuracy"], 4) for split in metrics}
    print(json.dumps({"model": str(loaded.path), "tta": loaded.tta, "accuracy": accuracy}))


def cmd_serve(args) -> None:
    from fer_core.launch import serve

    serve(args.port, args.streamlit_options)


def cmd_park(args) -> None:
    from fer_core.train import park

    parked = park(args.run, args.out)
    size = sum(path.stat().st_size for path in Path(args.out).rglob("*") if path.is_file())
    print(json.dumps({"run": args.run, "parked": str(parked), "megabytes": round(size / 1e6, 2)}))


def cmd_export(args) -> None:
    from fer_core.pipeline import export_model

    loaded = export_model(
        args.model, data=args.data, split_config=_split_config(args), spark_master=args.spark_master
    )
    entry = loaded.card["export"]["onnx"]
    print(
        json.dumps(
            {
                "model": str(loaded.path),
                "onnx": entry["file"],
                "max_abs_difference": entry["max_abs_difference"],
            }
        )
    )


def cmd_predict(args) -> None:
    from fer_core.artifacts import load_model
    from fer_core.predict import analyze_images

    loaded = load_model(args.model)
    results = analyze_images(
        args.images,
        loaded,
        detect=not args.no_detect,
        whole_if_none=args.whole_if_none,
        tta=args.tta,
        detector=args.detector,
        upscale=args.upscale,
        alignment=args.alignment,
    )
    if args.explain:
        written = _write_explanations(results, loaded, Path(args.explain))
        print(f"{written} Grad-CAM overlays written to {args.explain}", file=sys.stderr)
    if args.json:
        # One image a line, each encoded by json's C encoder (an indented dump runs the pure-Python
        # one, a tenth of a millisecond a face): still one JSON array.
        print("[\n" + ",\n".join(json.dumps(result.to_dict()) for result in results) + "\n]")
        return
    for result in results:
        if result.error:
            print(f"{result.name}: error: {result.error}")
        elif not result.faces:
            print(f"{result.name}: no face found (use --whole-if-none to read the whole image as a face)")
        for face in result.faces:
            doubt = " uncertain, or " + face.top(2)[1][0] if face.uncertain else ""
            print(f"{result.name}: {face.emotion} ({face.confidence:.0%}{doubt}) at {list(face.box)}")


def _write_explanations(results, loaded, folder: Path) -> int:
    """One PNG per face: its aligned crop under the Grad-CAM map of the predicted emotion."""
    import cv2
    import numpy as np

    from fer_core.explain import grad_cam, overlay

    faces = [(result, number, face) for result in results for number, face in enumerate(result.faces, 1)]
    if not faces:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    crops = np.stack([face.crop for _, _, face in faces])
    emotions = np.array([int(np.argmax(face.probabilities)) for _, _, face in faces])
    for (result, number, face), heatmap in zip(faces, grad_cam(loaded, crops, emotions), strict=True):
        name = f"{Path(result.name).stem}_face{number}_{face.emotion}.png"
        cv2.imwrite(str(folder / name), cv2.cvtColor(overlay(face.crop, heatmap), cv2.COLOR_RGB2BGR))
    return len(faces)


def _progress_printer(stream=None, width: int = 30):
    """A progress hook drawing Spark's tasks as a bar on ``stream`` (standard error as it is when
    called): redrawn in place on a terminal, else a line per tenth done (and whenever a new stage
    adds tasks)."""
    stream = stream or sys.stderr
    shown = {"step": None}

    def show(progress) -> None:
        if not progress.total:
            return
        filled = int(progress.fraction * width)
        text = (
            f"[{'#' * filled}{'.' * (width - filled)}] {progress.fraction:4.0%} "
            f"{progress.done}/{progress.total} tasks, {progress.elapsed_s:.0f} s"
        )
        if stream.isatty():
            print("\r" + text, end="", file=stream, flush=True)
        elif (int(progress.fraction * 10), progress.total) != shown["step"]:
            shown["step"] = (int(progress.fraction * 10), progress.total)
            print(text, file=stream, flush=True)

    return show


def _write_json(path: Path, content: dict) -> None:
    """Replace ``path`` whole (a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(content))
    os.replace(temporary, path)


def cmd_batch(args) -> None:
    from fer_core.batch import BatchConfig, BatchProgress, run_batch

    config = BatchConfig(
        model=args.model,
        detect=not args.no_detect,
        detector=args.detector,
        whole_if_none=args.whole_if_none,
        tta=args.tta,
        image_column=args.image_column,
    )
    bar = _progress_printer()
    state_path = Path(args.progress_json) if args.progress_json else None

    def state(progress, status: str) -> dict:
        # The fields of a training run's progress.json, so that fer_core.jobs reads both alike.
        return {
            "step": progress.total if status == "done" else progress.done,
            "total_steps": progress.total,
            "elapsed_s": round(progress.elapsed_s, 1),
            "eta_s": progress.eta_s,
            "status": status,
        }

    last = [BatchProgress(0, 0, 0.0)]

    def report(progress) -> None:
        last[0] = progress
        bar(progress)
        if state_path:
            _write_json(state_path, state(progress, "running"))

    if state_path:
        _write_json(state_path, state(last[0], "starting"))
    summary = run_batch(args.input, args.out, config, spark_master=args.spark_master, progress=report)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if state_path:
        _write_json(state_path, {**state(last[0], "done"), **summary.to_dict()})
    if args.json:
        print(json.dumps(summary.to_dict()))
        return
    print(f"{summary.output}: {summary.faces:,} faces in {summary.images:,} inputs ({summary.seconds:.0f} s)")
    print(f"  no face: {summary.no_face:,}  errors: {summary.errors:,}")
    print("  " + ", ".join(f"{name} {count:,}" for name, count in summary.emotions.items()))


def _video_progress_printer(stream=None, width: int = 30, after_s: float = 2.0):
    """A progress hook for ``video`` on ``stream`` (standard error as it is when called): a bar (or,
    when the container does not state the video's length, the seconds read) redrawn in place on a
    terminal, else a line per tenth; silent for videos read in under ``after_s`` seconds."""
    stream = stream or sys.stderr
    shown = {"step": None}

    def show(progress) -> None:
        if progress.elapsed_s < after_s:
            return
        fraction = progress.fraction
        if fraction is None:
            text, step = f"{progress.t_sec:.0f} s of video read", int(progress.t_sec // 30)
        else:
            filled = int(fraction * width)
            text = f"[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%}"
            step = int(fraction * 10)
        text += f", {progress.frames} frames, {progress.speed:.1f}x real time"
        if stream.isatty():
            print("\r" + text, end="", file=stream, flush=True)
        elif step != shown["step"]:
            shown["step"] = step
            print(text, file=stream, flush=True)

    return show


def cmd_video(args) -> None:
    from fer_core.artifacts import fast_model_path, load_model
    from fer_core.video import VideoConfig, analyze_video, smooth_probabilities

    if args.smooth < 0:
        raise CliError(f"--smooth must not be negative, got {args.smooth}")
    config = VideoConfig(fps=args.fps, detector=args.detector, tta=args.tta)
    loaded = load_model(args.model or fast_model_path())
    bar = _video_progress_printer()
    result = analyze_video(args.path, loaded, config, annotated=args.annotated, progress=bar)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if result.problem:
        print(f"warning: {result.problem}; the rows cover what was read", file=sys.stderr)
    if args.csv:
        table = result.table
        if args.smooth:
            smoothed = smooth_probabilities(table, args.smooth)
            for name in EMOTIONS:
                table[f"smooth_{name}"] = smoothed[f"p_{name}"]
        table.to_csv(args.csv, index=False, float_format="%.4f")
    if args.json:
        print(json.dumps(result.to_dict()))
        return
    print(
        f"{result.video}: {result.duration_s:.1f} s, {result.sampled_frames} frames sampled at "
        f"{config.fps:g}/s, {len(result.tracks)} faces tracked ({result.seconds:.1f} s, "
        f"{result.speed:.1f}x real time)"
    )
    for track in result.tracks:
        shares = sorted(track.emotion_share.items(), key=lambda item: -item[1])
        top = ", ".join(f"{name} {share:.0%}" for name, share in shares if share > 0)
        seen = f"{track.first_t:.1f}-{track.last_t:.1f} s in {track.frames} frames"
        print(f"  face {track.track}: {seen}: {top}")
    for path in (args.csv, args.annotated):
        if path:
            print(f"  written: {path}")


COMMANDS = {
    "stats": cmd_stats,
    "prepare": cmd_prepare,
    "train": cmd_train,
    "park": cmd_park,
    "serve": cmd_serve,
    "ship": cmd_ship,
    "evaluate": cmd_evaluate,
    "export": cmd_export,
    "predict": cmd_predict,
    "batch": cmd_batch,
    "video": cmd_video,
}


def main(argv: list[str] | None = None, *, record_archive: bool = False) -> int:
    """Run one command; ``record_archive`` (a ``python -m fer_core`` process) lets the JVM it starts
    leave the class-data-sharing archive as it exits, if there is none yet."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    from pyspark.errors import PySparkException

    from fer_core.spark import error_summary, record_class_archive

    if args.command != "serve" and record_archive:  # a server's JVM lives on: it only uses the archive
        record_class_archive()  # the first command on a machine leaves the JVM's class archive
    try:
        COMMANDS[args.command](args)
    except PySparkException as error:  # before ValueError: some are both, and say why only deep down
        print(f"error: {error_summary(error)}", file=sys.stderr)
        return 2
    except (ValueError, OSError, CliError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    return 0
