"""Reading FER2013 with Spark: the Kaggle CSV (plain or gzip) or an image-folder copy, into numpy faces."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fer_core.emotions import EMOTIONS, FACE_SIZE, SPLITS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_PATH = PROJECT_ROOT / "data" / "fer2013_sample.csv.gz"
FULL_DATA_ENV = "FER2013_CSV"
CACHE_ENV = "FER_CACHE_DIR"
PIXELS_PER_FACE = FACE_SIZE * FACE_SIZE
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm")
# Bumped whenever the reading code changes what it produces, so old caches are not reused.
READER_VERSION = "1"

# Folder names used by public image-folder copies of FER2013, mapped to the Kaggle Usage values.
SPLIT_FOLDERS = {
    "training": "Training",
    "train": "Training",
    "publictest": "PublicTest",
    "validation": "PublicTest",
    "val": "PublicTest",
    "valid": "PublicTest",
    "privatetest": "PrivateTest",
    "test": "PrivateTest",
}

# What the parsers emit per input row: a good face (reason null) or a rejected row (reason set).
ROW_SCHEMA = "label int, usage string, pixels binary, reason string, line string"


class DataError(ValueError):
    """A data source that cannot be used at all (missing, unreadable, no good row)."""


@dataclass(frozen=True)
class SplitConfig:
    """How rows are split when the source has no Usage column: stratified fractions with a seed."""

    test_fraction: float = 0.2
    validation_fraction: float = 0.2  # of what is left after the test rows
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("test_fraction", "validation_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")


@dataclass(frozen=True)
class FaceSet:
    """Faces of one split: ``images`` uint8 (N, H, W) in 0..255, ``labels`` int64 (N,) in 0..6."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> np.ndarray:
        """Faces per emotion, int64 (7,)."""
        return np.bincount(self.labels, minlength=len(EMOTIONS))


@dataclass(frozen=True)
class Dataset:
    """A source read into numpy: faces per split (Training, PublicTest, PrivateTest) and rejects."""

    source: str
    fingerprint: str
    splits: dict[str, FaceSet]
    rejects: dict[str, int] = field(default_factory=dict)
    has_usage: bool = True
    cache_key: str = ""  # identifies the source bytes and split settings
    cache_path: str = ""  # the Parquet file of these faces, read by later Spark stages

    @property
    def num_rejected(self) -> int:
        return sum(self.rejects.values())

    def counts(self) -> pd.DataFrame:
        """Rows per emotion (index) and split (columns), with totals."""
        table = pd.DataFrame({name: self.splits[name].counts() for name in SPLITS}, index=list(EMOTIONS))
        table["total"] = table.sum(axis=1)
        table.loc["total"] = table.sum(axis=0)
        return table


def default_source() -> Path:
    """The data used when none is named: the sample that ships with the project."""
    return SAMPLE_PATH


def full_dataset_path() -> Path | None:
    """The full FER2013 CSV: ``$FER2013_CSV``, else ``../shared/data/fer2013.csv.gz``, else None."""
    candidates = [os.environ.get(FULL_DATA_ENV), PROJECT_ROOT.parent / "shared/data/fer2013.csv.gz"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def cache_dir() -> Path:
    """Where prepared Parquet files live: ``$FER_CACHE_DIR`` or ``.cache/`` in the project."""
    return Path(os.environ.get(CACHE_ENV) or PROJECT_ROOT / ".cache")


# --- pure parsers (pandas in, pandas out): they run inside Spark's mapInPandas -------------------


def parse_csv_lines(lines: pd.Series, columns: tuple[str, ...]) -> pd.DataFrame:
    """Parse Kaggle FER2013 CSV lines into faces, vectorised over the batch.

    ``columns`` is the header in lower case, e.g. ``("emotion", "pixels", "usage")``. Every line comes
    back as one row: a face (``reason`` null, ``pixels`` 2,304 bytes) or a reject naming its reason.
    """
    lines = lines.fillna("").str.rstrip("\r")
    fields = lines.str.split(",", regex=False)
    n_fields = fields.str.len()
    label_text = fields.str[columns.index("emotion")].fillna("").str.strip()
    pixel_text = fields.str[columns.index("pixels")].fillna("").str.strip()
    if "usage" in columns:
        usage = fields.str[columns.index("usage")].fillna("").str.strip()
    else:
        usage = pd.Series([None] * len(lines), index=lines.index, dtype=object)

    reason = pd.Series([None] * len(lines), index=lines.index, dtype=object)

    def mark(mask: pd.Series, why: str) -> None:
        reason[mask & reason.isna()] = why

    mark(lines.str.strip() == "", "empty line")
    mark(n_fields != len(columns), "wrong number of fields")
    mark(~label_text.str.fullmatch(r"-?\d+"), "label not a number")
    label = pd.to_numeric(label_text.where(reason.isna()), errors="coerce")
    mark(~label.between(0, len(EMOTIONS) - 1), "label outside 0..6")
    if "usage" in columns:
        mark(~usage.isin(SPLITS), "unknown usage")
    mark(~pixel_text.str.fullmatch(r"[0-9 ]+"), "pixel not a number")
    mark(pixel_text.str.split().str.len() != PIXELS_PER_FACE, "pixel count not 2304")

    good = reason.isna()
    pixels = pd.Series([None] * len(lines), index=lines.index, dtype=object)
    if good.any():
        values = np.array(" ".join(pixel_text[good]).split(), dtype=np.int64)
        values = values.reshape(-1, PIXELS_PER_FACE)
        in_range = (values <= 255).all(axis=1)
        good_index = good[good].index
        mark(
            pd.Series(~in_range, index=good_index).reindex(lines.index, fill_value=False),
            "pixel outside 0..255",
        )
        faces = values[in_range].astype(np.uint8)
        pixels[good_index[in_range]] = [face.tobytes() for face in faces]

    good = reason.isna()
    return pd.DataFrame(
        {
            "label": label.where(good).astype("Int32"),
            "usage": usage.where(good),
            "pixels": pixels.where(good),
            "reason": reason,
            "line": lines.where(~good),
        }
    )


def parse_image_files(paths: pd.Series, contents: pd.Series, root: str) -> pd.DataFrame:
    """Decode image files laid out as ``ROOT/<split>/<emotion>/*`` (or ``ROOT/<emotion>/*``).

    Faces are read as grayscale and brought to 48 x 48 with area interpolation when they differ.
    """
    import cv2

    from fer_core.preprocess import resize_faces

    rows = []
    prefix = root.rstrip("/") + "/"
    for path, content in zip(paths, contents, strict=True):
        parts = path.removeprefix("file:").removeprefix(prefix.removeprefix("file:")).split("/")
        row = {"label": None, "usage": None, "pixels": None, "reason": None, "line": path}
        emotion = parts[-2].lower() if len(parts) >= 2 else ""
        split_name = parts[-3].lower() if len(parts) >= 3 else None
        image = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_GRAYSCALE)
        if emotion not in EMOTIONS:
            row["reason"] = "unknown emotion folder"
        elif split_name is not None and split_name not in SPLIT_FOLDERS:
            row["reason"] = "unknown split folder"
        elif image is None:
            row["reason"] = "not an image"
        else:
            face = resize_faces(image[None], FACE_SIZE)[0]
            row.update(label=EMOTIONS.index(emotion), pixels=face.tobytes(), line=None)
            row["usage"] = SPLIT_FOLDERS[split_name] if split_name else None
        rows.append(row)
    return pd.DataFrame(rows, columns=["label", "usage", "pixels", "reason", "line"]).astype(
        {"label": "Int32"}
    )


# --- fingerprints and caching --------------------------------------------------------------------


def fingerprint(source: str | os.PathLike) -> str:
    """sha256 of a file's bytes, or of every image path and its bytes under a folder."""
    path = Path(source)
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode())
            digest.update(file.read_bytes())
    else:
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_key_for(*parts: object) -> str:
    """A short stable hash of JSON-able parts, naming a cache entry."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_source(source: str | os.PathLike) -> Path:
    path = Path(source)
    if not path.exists():
        raise DataError(f"data source not found: {path}")
    if path.is_file() and not path.name.lower().endswith((".csv", ".csv.gz")):
        raise DataError(f"unsupported data file {path.name!r}: expected .csv, .csv.gz or a folder")
    return path


def read_header(path: Path) -> tuple[str, ...]:
    """The CSV's column names in lower case (the Kaggle layout when the file has no header)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as stream:
            first = stream.readline().strip()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    names = tuple(name.strip().lower() for name in first.split(","))
    if "emotion" in names and "pixels" in names:
        return names
    return ("emotion", "pixels", "usage") if len(names) == 3 else ("emotion", "pixels")


# --- Spark stage ---------------------------------------------------------------------------------


def read_rows(spark, source: str | os.PathLike):
    """Spark DataFrame of parsed rows (:data:`ROW_SCHEMA`), one per input line or image file."""
    path = _check_source(source)
    partitions = max(2, spark.sparkContext.defaultParallelism)
    if path.is_dir():
        root = path.resolve().as_uri().removeprefix("file://")
        files = (
            spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .load(str(path.resolve()))
            .select("path", "content")
        )
        files = files.where(files.path.rlike(r"(?i)\.(" + "|".join(s[1:] for s in IMAGE_SUFFIXES) + ")$"))

        def decode(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                yield parse_image_files(batch["path"], batch["content"], root)

        return files.repartition(partitions).mapInPandas(decode, ROW_SCHEMA)

    columns = read_header(path)
    # Read as text, not with the CSV reader: that one silently drops empty lines, which we must count.
    lines = spark.read.text(str(path.resolve()))
    lines = lines.where(~lines.value.rlike(r"(?i)^\s*emotion\s*,\s*pixels"))  # header lines

    def parse(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield parse_csv_lines(batch["value"], columns)

    return lines.repartition(partitions).mapInPandas(parse, ROW_SCHEMA)


def assign_splits(faces, config: SplitConfig):
    """Add a ``split`` column: the Usage value when present, else stratified fractions per emotion.

    The order within an emotion comes from a hash of the pixels and the seed, so the split does not
    depend on how Spark partitioned the rows.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy("label").orderBy(F.xxhash64("pixels", F.lit(config.seed)), "pixels")
    rank = F.percent_rank().over(order)
    validation_end = config.test_fraction + (1 - config.test_fraction) * config.validation_fraction
    stratified = (
        F.when(rank < config.test_fraction, "PrivateTest")
        .when(rank < validation_end, "PublicTest")
        .otherwise("Training")
    )
    return faces.withColumn("split", F.coalesce(F.col("usage"), stratified))


def load_dataset(
    source: str | os.PathLike | None = None,
    *,
    split_config: SplitConfig = SplitConfig(),
    spark_master: str | None = None,
    rejects_path: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> Dataset:
    """Read a FER2013 source into 48 x 48 faces per split, with Spark, cached as Parquet.

    A cache hit (same bytes, same split settings) reads the Parquet file without starting Spark.
    Bad rows are counted by reason; ``rejects_path`` also writes them (reason, line) to a CSV file.
    """
    path = _check_source(source or default_source())
    digest = fingerprint(path)
    key = cache_key_for("faces", READER_VERSION, digest, asdict(split_config))
    parquet = cache_dir() / f"faces-{key}.parquet"
    summary_path = cache_dir() / f"faces-{key}.json"
    if not (use_cache and summary_path.is_file() and parquet.exists()) or rejects_path:
        _run_read(path, split_config, spark_master, parquet, summary_path, rejects_path)
    summary = json.loads(summary_path.read_text())
    return Dataset(
        source=str(path),
        fingerprint=digest,
        splits=read_faces_parquet(parquet, FACE_SIZE),
        rejects=summary["rejects"],
        has_usage=summary["has_usage"],
        cache_key=key,
        cache_path=str(parquet),
    )


def _run_read(path, split_config, spark_master, parquet, summary_path, rejects_path) -> None:
    from pyspark.sql import functions as F

    from fer_core.spark import get_spark

    spark = get_spark(spark_master)
    rows = read_rows(spark, path).cache()
    try:
        reasons = {
            row["reason"]: row["count"]
            for row in rows.where(F.col("reason").isNotNull()).groupBy("reason").count().collect()
        }
        faces = rows.where(F.col("reason").isNull())
        if faces.limit(1).count() == 0:
            raise DataError(f"no usable face in {path}: {_describe(reasons) or 'it is empty'}")
        has_usage = faces.where(F.col("usage").isNotNull()).limit(1).count() > 0
        faces = assign_splits(faces, split_config).select("split", "label", "pixels")
        tmp = parquet.with_name(parquet.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        faces.write.mode("overwrite").parquet(str(tmp))
        shutil.rmtree(parquet, ignore_errors=True)
        tmp.rename(parquet)
        if rejects_path:
            rejected = rows.where(F.col("reason").isNotNull()).select("reason", "line").toPandas()
            Path(rejects_path).parent.mkdir(parents=True, exist_ok=True)
            rejected.to_csv(rejects_path, index=False)
    finally:
        rows.unpersist()
    summary_path.write_text(json.dumps({"rejects": reasons, "has_usage": has_usage}, indent=1))


def _describe(reasons: dict[str, int]) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))


def read_faces_parquet(parquet: Path, size: int) -> dict[str, FaceSet]:
    """The numpy boundary: a Parquet file of (split, label, pixels) into a :class:`FaceSet` per split."""
    import pyarrow.parquet as pq

    table = pq.read_table(parquet, columns=["split", "label", "pixels"]).to_pandas()
    splits = {}
    for name in SPLITS:
        part = table[table["split"] == name]
        # Sort by content so the arrays do not depend on Spark's partition order.
        part = part.iloc[np.lexsort((part["pixels"].to_numpy(), part["label"].to_numpy()))]
        buffer = b"".join(part["pixels"])
        images = np.frombuffer(buffer, np.uint8).reshape(-1, size, size).copy()
        splits[name] = FaceSet(images=images, labels=part["label"].to_numpy(np.int64))
    return splits
