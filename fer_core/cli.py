"""The command line: ``python -m fer_core stats|prepare|train|evaluate|ship|predict``."""

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
    TrainConfig,
)
from fer_core.emotions import EMOTIONS, SPLITS

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


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


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
    parser = argparse.ArgumentParser(prog="python -m fer_core", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

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
    _add_data_options(ship)  # the data the models were trained on

    predict = commands.add_parser("predict", help="emotions of the faces in photos")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--model", help="model folder (default: the project's default model)")
    predict.add_argument("--no-detect", action="store_true", help="each image is already a cropped face")
    predict.add_argument("--whole-if-none", action="store_true", help="no face found: use the whole image")
    predict.add_argument("--detector", default="mtcnn", choices=("mtcnn", "haar"))
    predict.add_argument(
        "--tta", choices=TTA_MODES, help="test-time augmentation (default: the model's own, in its card)"
    )
    predict.add_argument("--json", action="store_true", help="print a JSON list")
    return parser


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
        progress_path.write_text(json.dumps(state))
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
    )
    progress_path.write_text(
        json.dumps(
            {
                "step": result.steps_done,
                "total_steps": config.steps,
                "elapsed_s": round(result.train_seconds, 1),
                "eta_s": 0,
                "status": "stopped" if result.stopped else "done",
            }
        )
    )
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
    if args.json:
        print(json.dumps(report.to_dict()))
        return
    print(f"model: {loaded.path}  data: {dataset.source}  split: {args.split}")
    print(f"accuracy: {report.accuracy:.4f} on {report.n} faces")
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
    )
    metrics = loaded.card["metrics"]
    accuracy = {split: round(metrics[split]["accuracy"], 4) for split in metrics}
    print(json.dumps({"model": str(loaded.path), "tta": loaded.tta, "accuracy": accuracy}))


def cmd_predict(args) -> None:
    from fer_core.artifacts import load_model
    from fer_core.predict import analyze_image

    loaded = load_model(args.model)
    results = [
        analyze_image(
            path,
            loaded,
            name=path,
            detect=not args.no_detect,
            whole_if_none=args.whole_if_none,
            tta=args.tta,
            detector=args.detector,
        )
        for path in args.images
    ]
    if args.json:
        print(json.dumps([result.to_dict() for result in results], indent=1))
        return
    for result in results:
        if result.error:
            print(f"{result.name}: error: {result.error}")
        elif not result.faces:
            print(f"{result.name}: no face found (use --whole-if-none to read the whole image as a face)")
        for face in result.faces:
            print(f"{result.name}: {face.emotion} ({face.confidence:.0%}) at {list(face.box)}")


COMMANDS = {
    "stats": cmd_stats,
    "prepare": cmd_prepare,
    "train": cmd_train,
    "ship": cmd_ship,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    from pyspark.errors import PySparkException

    try:
        COMMANDS[args.command](args)
    except (ValueError, OSError, CliError, PySparkException) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    return 0
