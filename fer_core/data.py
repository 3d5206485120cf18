"""Reading FER2013 with Spark: the Kaggle CSV (plain or gzip) or an image-folder copy, into numpy faces."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import threading
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from fer_core.emotions import EMOTIONS, FACE_SIZE, SPLITS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_PATH = PROJECT_ROOT / "data" / "fer2013_sample.csv.gz"
FULL_DATA_ENV = "FER2013_CSV"
CACHE_ENV = "FER_CACHE_DIR"
PIXELS_PER_FACE = FACE_SIZE * FACE_SIZE
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm")
# Bumped whenever the reading code changes what it produces, so old caches are not reused.
READER_VERSION = "2"

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


# --- pure parsers: they run inside Spark's mapInArrow / mapInPandas ---------------------------------

NOT_UTF8 = "not UTF-8 text"
TRUNCATED = "truncated file"
DAMAGED = "damaged compressed data"
HEADER_LINE = "header line"  # a (repeated) header: left out of the rows, never counted as bad
_LABEL_TEXT = re.compile(rb"-?[0-9]+")
_USAGE_NAMES = {name.lower().encode(): name for name in SPLITS}  # any letter case -> canonical
_PIXEL_CHARS = b"0123456789 "


@dataclass(frozen=True)
class ParsedLines:
    """CSV lines parsed in one batch: per line a reason (None for a face), label and usage; the faces
    of the good lines, in line order, as uint8 (K, 2304)."""

    reasons: list[str | None]
    labels: np.ndarray  # int32 (N,), meaningful where the reason is None
    usages: list[str | None]
    faces: np.ndarray  # uint8 (K, 2304), K = number of good lines
    lines: list[str | None]  # the line as text where it was rejected

    @property
    def good(self) -> np.ndarray:
        return np.array([reason is None for reason in self.reasons], dtype=bool)


def _as_bytes(line: object) -> bytes | None:
    if isinstance(line, str):
        return line.encode()
    return line if isinstance(line, bytes) else None  # pandas gives NaN for a missing line


def _fields(line: bytes) -> list[bytes]:
    """A line's comma-separated fields, trimmed, without the quotes spreadsheets put around them."""
    return [field.strip().strip(b'"').strip() for field in line.split(b",")]


def _check_line(line: bytes | None, columns: tuple[str, ...]) -> tuple[str | None, int, str | None, bytes]:
    """(reason or None, label, usage, pixel text) of one line; the pixel numbers are parsed later, batched."""
    if line is None or not line.strip():
        return "empty line", 0, None, b""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return NOT_UTF8, 0, None, b""
    fields = _fields(line.removeprefix(codecs.BOM_UTF8))
    if len(line) < 100 and tuple(field.lower().decode() for field in fields) == columns:
        return HEADER_LINE, 0, None, b""
    if len(fields) != len(columns):
        return "wrong number of fields", 0, None, b""
    label_text = fields[columns.index("emotion")]
    if not _LABEL_TEXT.fullmatch(label_text):
        return "label not a number", 0, None, b""
    label = int(label_text)
    if not 0 <= label < len(EMOTIONS):
        return "label outside 0..6", 0, None, b""
    usage = None
    if "usage" in columns:
        usage = _USAGE_NAMES.get(fields[columns.index("usage")].lower())
        if usage is None:
            return "unknown usage", 0, None, b""
    pixels = fields[columns.index("pixels")]
    if not pixels or pixels.translate(None, _PIXEL_CHARS):
        return "pixel not a number", 0, None, b""
    if pixels.count(b" ") != PIXELS_PER_FACE - 1:  # irregular spacing: count the numbers themselves
        numbers = pixels.split()
        if len(numbers) != PIXELS_PER_FACE:
            return f"pixel count not {PIXELS_PER_FACE}", 0, None, b""
        pixels = b" ".join(numbers)
    return None, label, usage, pixels


def parse_lines(lines: Sequence[bytes | str | None], columns: tuple[str, ...]) -> ParsedLines:
    """Parse Kaggle FER2013 CSV lines (raw bytes or text) into faces and named rejects.

    ``columns`` is the header in lower case, e.g. ``("emotion", "pixels", "usage")``. Fields may be
    quoted, Usage may be in any letter case. The checks per line are a few C-level string operations;
    the 2,304 pixel numbers of every good line in the batch are parsed in one ``np.fromstring`` call.
    """
    raw = [_as_bytes(line) for line in lines]
    checked = [_check_line(line, columns) for line in raw]
    reasons = [reason for reason, _, _, _ in checked]
    labels = np.array([label for _, label, _, _ in checked], dtype=np.int32)
    usages = [usage for _, _, usage, _ in checked]
    good = [index for index, reason in enumerate(reasons) if reason is None]
    values = np.fromstring(b" ".join(checked[index][3] for index in good), dtype=np.int32, sep=" ")
    if values.size != len(good) * PIXELS_PER_FACE:
        # A line with 2,303 spaces but a doubled one holds 2,303 numbers: count them one by one (rare).
        texts = {}
        for index in good:
            numbers = checked[index][3].split()
            if len(numbers) == PIXELS_PER_FACE:
                texts[index] = b" ".join(numbers)
            else:
                reasons[index] = f"pixel count not {PIXELS_PER_FACE}"
        good = list(texts)
        values = np.fromstring(b" ".join(texts.values()), dtype=np.int32, sep=" ")
    values = values.reshape(-1, PIXELS_PER_FACE)
    in_range = (values <= 255).all(axis=1)
    for index in np.asarray(good, dtype=np.int64)[~in_range]:
        reasons[index] = "pixel outside 0..255"
    return ParsedLines(
        reasons=reasons,
        labels=labels,
        usages=[usage if reason is None else None for usage, reason in zip(usages, reasons, strict=True)],
        faces=values[in_range].astype(np.uint8),
        lines=[
            None if reason is None else (line or b"").decode("utf-8", errors="replace")
            for reason, line in zip(reasons, raw, strict=True)
        ],
    )


def parse_csv_lines(lines: pd.Series, columns: tuple[str, ...]) -> pd.DataFrame:
    """:func:`parse_lines` as a pandas frame of :data:`ROW_SCHEMA`, one row per line, same index (a
    header line comes back as a reject with the reason :data:`HEADER_LINE`)."""
    parsed = parse_lines(lines.tolist(), columns)
    good = parsed.good
    pixels = np.full(len(good), None, dtype=object)
    pixels[good] = [face.tobytes() for face in parsed.faces]
    return pd.DataFrame(
        {
            "label": pd.Series(parsed.labels, index=lines.index).astype("Int32").where(good),
            "usage": pd.Series(parsed.usages, index=lines.index, dtype=object),
            "pixels": pixels,
            "reason": parsed.reasons,
            "line": parsed.lines,
        },
        index=lines.index,
    )


def parse_csv_batch(lines: pa.Array, columns: tuple[str, ...]) -> pa.RecordBatch:
    """:func:`parse_lines` from and to Arrow (:data:`ROW_SCHEMA`), header lines left out."""
    parsed = parse_lines(lines.to_pylist(), columns)
    good = parsed.good
    pixels = np.full(len(good), None, dtype=object)
    pixels[good] = [face.tobytes() for face in parsed.faces]
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(parsed.labels, mask=~good, type=pa.int32()),
            pa.array(parsed.usages, type=pa.string()),
            pa.array(pixels, type=pa.binary()),
            pa.array(parsed.reasons, type=pa.string()),
            pa.array(parsed.lines, type=pa.string()),
        ],
        names=["label", "usage", "pixels", "reason", "line"],
    )
    return batch.filter(pa.array([reason != HEADER_LINE for reason in parsed.reasons]))


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


def _read_start(path: Path, size: int = 1 << 16) -> bytes:
    """The first ``size`` bytes of a CSV's text (decompressed for ``.gz``), as far as they can be read."""
    start = b""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            while len(start) < size and (block := stream.read1(size - len(start))):
                start += block
    except (EOFError, zlib.error) as error:  # a truncated or damaged .gz: what came out is enough
        if not start:
            raise DataError(f"cannot read {path}: {error}") from error
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from error
    return start


# Control characters other than tab and line ends, and what undecodable bytes decode to.
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]")


def _check_text(path: Path, start: bytes) -> None:
    """Refuse, in one message, a file that is not UTF-8 text at all (UTF-16, binary) before Spark reads
    it. A few odd bytes are not enough: each line holding one is counted as a bad row instead."""
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f'{path} is UTF-16 text: save it as UTF-8 ("CSV UTF-8" in a spreadsheet)')
    if start.startswith(b"\x1f\x8b") and not path.name.lower().endswith(".gz"):
        raise DataError(f"{path} is gzip-compressed: name it {path.name}.gz")
    text = start.decode("utf-8", errors="replace")
    if len(_NOT_TEXT.findall(text)) > 0.3 * len(text):
        raise DataError(f"{path} is not a text file (binary data or UTF-16): expected a UTF-8 CSV")


def read_header(path: Path) -> tuple[str, ...]:
    """The CSV's column names in lower case (the Kaggle layout when the file has no header).

    Raises :class:`DataError` for a file that cannot be read or is not UTF-8 text at all.
    """
    start = _read_start(path)
    _check_text(path, start)
    first = start.split(b"\n", 1)[0].removeprefix(codecs.BOM_UTF8)
    names = tuple(name.decode("utf-8", errors="replace").lower() for name in _fields(first))
    if "emotion" in names and "pixels" in names:
        return names
    return ("emotion", "pixels", "usage") if len(names) == 3 else ("emotion", "pixels")


def gzip_damage(path: Path) -> str | None:
    """None when a ``.gz`` file decompresses to its end, else why not (:data:`TRUNCATED`, :data:`DAMAGED`)."""
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read1(1 << 20):
                pass
    except EOFError:
        return TRUNCATED
    except (zlib.error, gzip.BadGzipFile):
        return DAMAGED
    return None


def salvage_gzip(path: Path, out: Path) -> None:
    """Write the whole lines that can be read from a truncated or damaged ``.gz`` to ``out`` (plain)."""
    with gzip.open(path, "rb") as stream, open(out, "wb") as sink:
        tail = b""  # the last line read so far, maybe cut
        with contextlib.suppress(EOFError, zlib.error, gzip.BadGzipFile):
            # read1, not read: a read that reaches the damage would drop all it had decoded.
            while block := stream.read1(1 << 20):
                lines, _, tail = (tail + block).rpartition(b"\n")
                if lines:
                    sink.write(lines + b"\n")


# --- Spark stage ---------------------------------------------------------------------------------


def read_lines(spark, path: str | os.PathLike):
    """Spark DataFrame of a CSV's lines as raw bytes (one ``value`` column), header included.

    Read as text, not with the CSV reader: that one silently drops empty lines, which we must count;
    as bytes, so that one line that is not UTF-8 is one bad row, not a failed job.
    """
    from pyspark.sql import functions as F

    return spark.read.text(str(Path(path).resolve())).select(F.col("value").cast("binary"))


def read_rows(spark, source: str | os.PathLike):
    """Spark DataFrame of parsed rows (:data:`ROW_SCHEMA`), one per input line or image file.

    Header lines are left out; every other line is a face or a reject naming its reason.
    """
    path = _check_source(source)
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

        partitions = max(2, spark.sparkContext.defaultParallelism)
        return files.repartition(partitions).mapInPandas(decode, ROW_SCHEMA)

    columns = read_header(path)

    def parse(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield parse_csv_batch(batch.column(0), columns)

    # No shuffle of the lines: a plain CSV is split into partitions by Spark; a .gz is one stream, whose
    # decompression (JVM) and parsing (Python) overlap in one task, faster than a 300 MB shuffle.
    return read_lines(spark, path).mapInArrow(parse, ROW_SCHEMA)


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


_read_locks: dict[str, threading.Lock] = {}  # one per cache entry being read (see load_dataset)


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
    # One read per cache entry at a time in this process: a page asking while the server's warm-up
    # reads the same data waits for that read and then finds it cached, rather than racing it.
    with _read_locks.setdefault(str(parquet), threading.Lock()):
        if not (use_cache and summary_path.is_file() and parquet.exists()):
            _run_read(path, split_config, spark_master, parquet, summary_path)
    summary = json.loads(summary_path.read_text())
    if rejects_path:
        write_rejects(parquet, summary["rejects"], rejects_path)
    return Dataset(
        source=str(path),
        fingerprint=digest,
        splits=read_faces_parquet(parquet, FACE_SIZE),
        rejects=summary["rejects"],
        has_usage=summary["has_usage"],
        cache_key=key,
        cache_path=str(parquet),
    )


# The cache's columns: faces have a split (reason null), rejects a reason and their line.
CACHE_COLUMNS = ("split", "label", "pixels", "reason", "line")


def _run_read(path: Path, split_config: SplitConfig, spark_master, parquet: Path, summary_path: Path) -> None:
    """Read ``path`` with Spark into ``parquet`` (faces and rejects) and its summary (reject counts)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from fer_core.spark import get_spark

    if path.is_file():
        read_header(path)  # a file that is not text at all is refused before Spark starts
    parquet.parent.mkdir(parents=True, exist_ok=True)
    rows_path = parquet.with_name(parquet.name + ".rows")
    salvaged = parquet.with_name(parquet.name + ".csv")
    with ThreadPoolExecutor(1) as pool:
        # Spark fails a whole job with a Java stack trace on a .gz that ends early: check it first,
        # while Spark starts (zlib runs outside the GIL), and read what is readable.
        damage = pool.submit(gzip_damage, path) if path.name.lower().endswith(".gz") else None
        spark = get_spark(spark_master)
        lost = damage.result() if damage else None
    try:
        if lost:
            salvage_gzip(path, salvaged)
        shutil.rmtree(rows_path, ignore_errors=True)
        rows = read_rows(spark, salvaged if lost else path).withColumnRenamed("usage", "split")
        rows.select(*CACHE_COLUMNS).write.parquet(str(rows_path))
    finally:
        salvaged.unlink(missing_ok=True)
    # Counting on the driver from two small columns is faster than more Spark jobs over the rows.
    summary = pq.read_table(rows_path, columns=["split", "reason"])
    reasons = {item["values"]: item["counts"] for item in pc.value_counts(summary["reason"]).to_pylist()}
    faces = reasons.pop(None, 0)
    if lost:
        reasons[lost] = 1
    if faces == 0:
        shutil.rmtree(rows_path, ignore_errors=True)
        raise DataError(f"no usable face in {path}: {_describe(reasons) or 'it is empty'}")
    unsplit = pc.sum(pc.and_(summary["split"].is_null(), summary["reason"].is_null())).as_py() or 0
    tmp = parquet.with_name(parquet.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if unsplit:  # no Usage column (or image folders without split folders): stratified splits
        rows = spark.read.parquet(str(rows_path))
        faces_only = rows.where(rows.reason.isNull()).withColumnRenamed("split", "usage")
        rows = (
            assign_splits(faces_only, split_config)
            .select(*CACHE_COLUMNS)
            .unionByName(rows.where(rows.reason.isNotNull()))
        )
        rows.write.parquet(str(tmp))
        shutil.rmtree(rows_path)
    else:
        rows_path.rename(tmp)
    shutil.rmtree(parquet, ignore_errors=True)
    tmp.rename(parquet)
    summary_path.write_text(json.dumps({"rejects": reasons, "has_usage": unsplit < faces}, indent=1))


def _describe(reasons: dict[str, int]) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))


def write_rejects(parquet: str | os.PathLike, rejects: dict[str, int], out: str | os.PathLike) -> None:
    """Write the rejected rows of a cached source (reason, line) to the CSV file ``out``.

    Reasons that are not rows (the lost end of a truncated file) come with an empty line.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(parquet, columns=["reason", "line"])
    rejected = table.filter(pc.is_valid(table["reason"])).to_pandas()
    extra = [{"reason": reason, "line": ""} for reason in (TRUNCATED, DAMAGED) if reason in rejects]
    rejected = pd.concat([rejected, pd.DataFrame(extra, columns=["reason", "line"])], ignore_index=True)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    rejected.to_csv(out, index=False)


def _images(pixels: pa.ChunkedArray, size: int) -> np.ndarray:
    """uint8 (N, size, size) over the bytes of a binary column of faces of ``size * size`` bytes each."""
    array = pixels.combine_chunks()
    if len(array) == 0:
        return np.empty((0, size, size), np.uint8)
    offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    offsets = np.frombuffer(array.buffers()[1], offset_type)[array.offset : array.offset + len(array) + 1]
    if array.null_count or not (np.diff(offsets) == size * size).all():
        raise ValueError(f"expected faces of {size * size} bytes in the pixels column")
    return np.frombuffer(array.buffers()[2], np.uint8)[offsets[0] : offsets[-1]].reshape(-1, size, size)


def read_faces_parquet(parquet: str | os.PathLike, size: int) -> dict[str, FaceSet]:
    """The numpy boundary: a Parquet file of (split, label, pixels) into a :class:`FaceSet` per split."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(parquet, columns=["split", "label", "pixels"])
    splits = {}
    for name in SPLITS:
        part = table.filter(pc.equal(table["split"], name))
        images = _images(part["pixels"], size)
        labels = part["label"].to_numpy().astype(np.int64)
        # Sort by label, then content, so the arrays do not depend on Spark's partition order.
        keys = images.reshape(len(images), size * size).view(f"V{size * size}").ravel()
        order = np.argsort(keys, kind="stable")
        order = order[np.argsort(labels[order], kind="stable")]
        splits[name] = FaceSet(images=images[order], labels=labels[order])
    return splits
