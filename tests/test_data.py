"""Reading FER2013 with Spark: the CSV layouts, image folders, bad rows, splits and the cache."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_core.data import (
    HEADER_LINE,
    NOT_UTF8,
    DataError,
    SplitConfig,
    assign_splits,
    load_dataset,
    parse_csv_batch,
    parse_csv_lines,
    read_faces_parquet,
)
from fer_core.emotions import EMOTIONS, SPLITS

COLUMNS = ("emotion", "pixels", "usage")


def _write_csv(path, lines, header="emotion,pixels,Usage", compress=False):
    text = "\n".join(([header] if header else []) + lines) + "\n"
    if compress:
        with gzip.open(path, "wt") as stream:
            stream.write(text)
    else:
        path.write_text(text)
    return path


def _bad_lines(good: str) -> dict[str, str]:
    label, pixels, usage = good.split(",")
    values = pixels.split()
    return {
        "label outside 0..6": f"7,{pixels},{usage}",
        "label not a number": f"x,{pixels},{usage}",
        "pixel count not 2304": f"{label},{' '.join(values[:-1])},{usage}",
        "pixel not a number": f"{label},{' '.join(values[:-1] + ['a1'])},{usage}",
        "pixel outside 0..255": f"{label},{' '.join(values[:-1] + ['256'])},{usage}",
        "wrong number of fields": f"{label},{pixels}",
        "unknown usage": f"{label},{pixels},Validation",
        "empty line": "",
    }


def test_parse_csv_lines_keeps_good_rows_and_names_each_bad_one(sample_lines):
    good = sample_lines[:3]
    bad = _bad_lines(sample_lines[0])
    parsed = parse_csv_lines(pd.Series(good + list(bad.values())), COLUMNS)

    kept = parsed[parsed["reason"].isna()]
    assert len(kept) == 3
    for row, line in zip(kept.itertuples(), good, strict=True):
        label, pixels, usage = line.split(",")
        assert row.label == int(label) and row.usage == usage
        assert np.array_equal(np.frombuffer(row.pixels, np.uint8), np.array(pixels.split(), dtype=np.uint8))
    assert list(parsed["reason"].iloc[3:]) == list(bad)
    assert parsed["line"].iloc[3:].tolist() == list(bad.values())


def test_parser_reads_spreadsheet_layouts_and_odd_spacing_like_the_kaggle_line(sample_lines):
    label, pixels, usage = sample_lines[0].split(",")
    variants = [
        f'"{label}","{pixels}","{usage}"',  # quoted, as spreadsheets write it
        f"\ufeff{label},{pixels},{usage.upper()}",  # a byte order mark, Usage in capitals
        f" {label} , {pixels.replace(' ', '  ', 5)} ,{usage.lower()}\r",  # spaces, doubled spaces, CRLF
    ]
    parsed = parse_csv_lines(pd.Series([sample_lines[0], *variants]), COLUMNS)

    assert parsed["reason"].isna().all()
    assert parsed["usage"].tolist() == [usage] * 4 and parsed["label"].tolist() == [int(label)] * 4
    assert parsed["pixels"].nunique() == 1

    # 2,303 spaces, one of them doubled: 2,303 numbers, found although the spaces count right.
    short = f"{label},{' '.join(pixels.split()[1:]).replace(' ', '  ', 1)},{usage}"
    parsed = parse_csv_lines(pd.Series([sample_lines[0], short, sample_lines[1]]), COLUMNS)
    assert parsed["reason"].tolist() == [None, "pixel count not 2304", None]
    assert parsed["pixels"].iloc[2] == bytes(np.array(sample_lines[1].split(",")[1].split(), np.uint8))


def test_parser_names_header_lines_and_bytes_that_are_not_utf8(sample_lines):
    line = sample_lines[0].encode()
    lines = [b'"Emotion","Pixels","Usage"', line, line[:100] + b"\xff" + line[101:], line]
    parsed = parse_csv_lines(pd.Series(lines), COLUMNS)
    assert parsed["reason"].tolist() == [HEADER_LINE, None, NOT_UTF8, None]

    import pyarrow as pa

    batch = parse_csv_batch(pa.array(lines, pa.binary()), COLUMNS)  # what Spark gets: no header row
    assert batch.column("reason").to_pylist() == [None, NOT_UTF8, None]
    assert batch.column("pixels").to_pylist()[::2] == parsed["pixels"].tolist()[1::2]


def test_spark_read_counts_rejects_by_reason_and_writes_them(tmp_path, sample_lines, spark):
    bad = _bad_lines(sample_lines[0])
    source = _write_csv(
        tmp_path / "mixed.csv", sample_lines[:200] + list(bad.values()) + sample_lines[200:300]
    )
    rejects = tmp_path / "rejects.csv"

    dataset = load_dataset(source, spark_master="local[2]", rejects_path=rejects)

    assert sum(len(faces) for faces in dataset.splits.values()) == 300
    assert dataset.rejects == {reason: 1 for reason in bad}
    written = pd.read_csv(rejects, keep_default_na=False)
    assert sorted(written["reason"]) == sorted(bad)


def test_gzip_and_plain_csv_give_the_same_faces(tmp_path, sample_lines, spark):
    plain = load_dataset(_write_csv(tmp_path / "a.csv", sample_lines[:150]))
    packed = load_dataset(_write_csv(tmp_path / "b.csv.gz", sample_lines[:150], compress=True))
    for split in SPLITS:
        assert np.array_equal(plain.splits[split].images, packed.splits[split].images)
        assert np.array_equal(plain.splits[split].labels, packed.splits[split].labels)


def test_source_without_a_good_row_is_an_error_naming_the_file(tmp_path, sample_lines, spark):
    source = _write_csv(tmp_path / "broken.csv", ["9,1 2 3,Training", "", "x,y,z"])
    with pytest.raises(DataError, match="broken.csv"):
        load_dataset(source)


def test_missing_or_unsupported_source_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nope.csv")
    (tmp_path / "faces.txt").write_text("x")
    with pytest.raises(DataError, match="unsupported"):
        load_dataset(tmp_path / "faces.txt")


def test_without_usage_rows_are_split_stratified_with_a_seed(tmp_path, sample_lines, spark):
    lines = [line.rsplit(",", 1)[0] for line in sample_lines]
    source = _write_csv(tmp_path / "no_usage.csv", lines, header="emotion,pixels")
    config = SplitConfig(test_fraction=0.2, validation_fraction=0.25, seed=3)

    dataset = load_dataset(source, split_config=config)
    again = load_dataset(source, split_config=config, use_cache=False)

    assert not dataset.has_usage
    counts = dataset.counts()
    for emotion in EMOTIONS:
        total = counts.loc[emotion, "total"]
        assert abs(counts.loc[emotion, "PrivateTest"] - 0.2 * total) <= 1
        assert abs(counts.loc[emotion, "PublicTest"] - 0.8 * 0.25 * total) <= 1.5
    for split in SPLITS:  # same seed, same split, whatever Spark's partitioning
        assert np.array_equal(dataset.splits[split].images, again.splits[split].images)


def test_assign_splits_keeps_usage_when_present(spark):
    from pyspark.testing import assertDataFrameEqual

    rows = [(0, "Training", b"\x01"), (1, "PrivateTest", b"\x02"), (3, "PublicTest", b"\x03")]
    faces = spark.createDataFrame(rows, "label int, usage string, pixels binary")
    expected = spark.createDataFrame(
        [row + (row[1],) for row in rows], "label int, usage string, pixels binary, split string"
    )
    assertDataFrameEqual(assign_splits(faces, SplitConfig()), expected)


def test_image_folder_layout_reads_like_the_csv(tmp_path, sample_lines, spark):
    import cv2

    lines = sample_lines[:60]
    folders = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
    for index, line in enumerate(lines):
        label, pixels, usage = line.split(",")
        folder = tmp_path / "faces" / folders[usage] / EMOTIONS[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        face = np.array(pixels.split(), dtype=np.uint8).reshape(48, 48)
        cv2.imwrite(str(folder / f"{index}.png"), face)
    (tmp_path / "faces" / "train" / "happy" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "faces" / "train" / "bored").mkdir()
    cv2.imwrite(str(tmp_path / "faces" / "train" / "bored" / "x.png"), np.zeros((48, 48), np.uint8))

    from_folder = load_dataset(tmp_path / "faces")
    from_csv = load_dataset(_write_csv(tmp_path / "same.csv", lines))

    assert from_folder.rejects == {"not an image": 1, "unknown emotion folder": 1}
    for split in SPLITS:
        assert np.array_equal(from_folder.splits[split].images, from_csv.splits[split].images)
        assert np.array_equal(from_folder.splits[split].labels, from_csv.splits[split].labels)


def test_second_load_reads_the_parquet_cache(tmp_path, sample_lines, spark):
    source = _write_csv(tmp_path / "cached.csv", sample_lines[:100])
    first = load_dataset(source)
    stamp = {p.name: p.stat().st_mtime_ns for p in Path(first.cache_path).iterdir()}
    second = load_dataset(source)
    assert second.cache_path == first.cache_path
    assert {p.name: p.stat().st_mtime_ns for p in Path(second.cache_path).iterdir()} == stamp
    cached = read_faces_parquet(first.cache_path, 48)
    assert sum(len(faces) for faces in cached.values()) == 100


def test_full_fer2013_has_the_kaggle_split_sizes(full_csv, spark):
    dataset = load_dataset(full_csv)
    assert {split: len(dataset.splits[split]) for split in SPLITS} == {
        "Training": 28_709,
        "PublicTest": 3_435,
        "PrivateTest": 3_589,
    }
    assert dataset.rejects == {}
    assert dataset.splits["Training"].images.dtype == np.uint8
    assert dataset.splits["Training"].labels.dtype == np.int64
