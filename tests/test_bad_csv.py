"""Broken and odd CSV files (issue 12, classes 1-5) built from real rows, read with real Spark and the CLI."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

from fer_core.data import NOT_UTF8, TRUNCATED, DataError, load_dataset
from fer_core.emotions import SPLITS

HEADER = "emotion,pixels,Usage"


def _write(path, lines: list[str | bytes], header: str | None = HEADER, compress: bool = False):
    rows = ([header] if header else []) + lines
    data = b"\n".join(row.encode() if isinstance(row, str) else row for row in rows) + b"\n"
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _non_utf8(line: str) -> bytes:
    """The line with one byte that is not UTF-8 in the middle of its pixels."""
    label, pixels, usage = line.split(",")
    return f"{label},{pixels[:40]}".encode() + b"\xff" + f"{pixels[41:]},{usage}".encode()


def _faces(dataset) -> int:
    return sum(len(faces) for faces in dataset.splits.values())


def _assert_same_faces(dataset, expected) -> None:
    for split in SPLITS:
        assert np.array_equal(dataset.splits[split].images, expected.splits[split].images)
        assert np.array_equal(dataset.splits[split].labels, expected.splits[split].labels)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, sample_lines, spark):
    """The first 300 real rows as the Kaggle file writes them, read the ordinary way."""
    return load_dataset(_write(tmp_path_factory.mktemp("reference") / "plain.csv", sample_lines[:300]))


# --- 1. bytes that are not UTF-8 -----------------------------------------------------------------


def test_a_byte_that_is_not_utf8_rejects_only_its_row(tmp_path, sample_lines, reference):
    lines = list(sample_lines[:300])
    lines[40] = _non_utf8(lines[40])
    lines[250] = lines[250].replace("Training", "Train\xe9ing").encode("latin-1")  # é as Latin-1
    rejects = tmp_path / "rejects.csv"

    dataset = load_dataset(_write(tmp_path / "one_bad_byte.csv", lines), rejects_path=rejects)

    assert dataset.rejects == {NOT_UTF8: 2}
    assert _faces(dataset) == _faces(reference) - 2 == 298
    assert rejects.read_text().count(NOT_UTF8) == 2


@pytest.mark.parametrize(
    ("name", "encode", "problem"),
    [
        ("utf16_bom.csv", lambda text: text.encode("utf-16"), "UTF-16"),
        ("utf16_no_bom.csv", lambda text: text.encode("utf-16-le"), "not a text file"),
        ("random.csv", lambda text: np.random.default_rng(0).bytes(50_000), "not a text file"),
        ("packed.csv", lambda text: gzip.compress(text.encode()), "gzip-compressed"),
    ],
)
def test_a_file_that_is_not_utf8_text_is_one_error_naming_it(tmp_path, sample_lines, name, encode, problem):
    source = tmp_path / name
    source.write_bytes(encode("\n".join([HEADER, *sample_lines[:30]]) + "\n"))
    with pytest.raises(DataError, match=problem) as raised:
        load_dataset(source)
    assert name in str(raised.value) and len(str(raised.value).splitlines()) == 1


# --- 2. a truncated .csv.gz ----------------------------------------------------------------------


def test_a_truncated_gzip_keeps_every_whole_row_it_holds(tmp_path, sample_lines, spark):
    packed = gzip.compress(("\n".join([HEADER, *sample_lines[:600]]) + "\n").encode())
    source = tmp_path / "cut.csv.gz"
    source.write_bytes(packed[: len(packed) * 3 // 5])
    # What is readable, found without the gzip module the reader uses: the whole lines before the cut.
    readable = zlib.decompressobj(wbits=31).decompress(source.read_bytes()).decode()
    whole_rows = readable.rpartition("\n")[0].splitlines()[1:]
    assert 100 < len(whole_rows) < 600

    dataset = load_dataset(source)

    assert dataset.rejects == {TRUNCATED: 1}
    _assert_same_faces(dataset, load_dataset(_write(tmp_path / "whole.csv", whole_rows)))


def test_a_gzip_cut_before_its_first_row_is_one_error_naming_it(tmp_path, sample_lines):
    packed = gzip.compress(("\n".join([HEADER, *sample_lines[:50]]) + "\n").encode())
    source = tmp_path / "cut_early.csv.gz"
    source.write_bytes(packed[:20])
    with pytest.raises(DataError, match="cut_early.csv.gz"):
        load_dataset(source)


# --- 3.-5. quotes, letter case, column order -----------------------------------------------------


def _quoted(line: str) -> str:
    return ",".join(f'"{field}"' for field in line.split(","))


def test_quoted_fields_as_spreadsheets_write_them(tmp_path, sample_lines, reference):
    lines = [_quoted(line) if index % 2 else line for index, line in enumerate(sample_lines[:300])]
    lines[7] = lines[7].replace(",Training", ',"Training"').replace(",PublicTest", ',"PublicTest"')
    source = _write(tmp_path / "quoted.csv", lines, header=_quoted(HEADER))

    dataset = load_dataset(source)

    assert dataset.rejects == {}
    _assert_same_faces(dataset, reference)


def test_usage_in_any_letter_case_is_read_as_the_canonical_name(tmp_path, sample_lines, reference):
    cases = [str.lower, str.upper, str.swapcase]
    lines = []
    for index, line in enumerate(sample_lines[:300]):
        label, pixels, usage = line.split(",")
        lines.append(f"{label},{pixels},{cases[index % 3](usage)}")

    dataset = load_dataset(_write(tmp_path / "cases.csv", lines, header="EMOTION,Pixels,usage"))

    assert dataset.rejects == {}
    _assert_same_faces(dataset, reference)


@pytest.mark.parametrize("order", [("Usage", "emotion", "pixels"), ("pixels", "Usage", "emotion")])
def test_columns_in_another_order_and_their_header_is_no_bad_row(tmp_path, sample_lines, reference, order):
    kaggle = ("emotion", "pixels", "Usage")
    lines = []
    for line in sample_lines[:300]:
        fields = dict(zip(kaggle, line.split(","), strict=True))
        lines.append(",".join(fields[name] for name in order))
    lines.insert(120, ",".join(order))  # a header repeated where two files were joined

    dataset = load_dataset(_write(tmp_path / "reordered.csv", lines, header=",".join(order)))

    assert dataset.rejects == {}
    _assert_same_faces(dataset, reference)


# --- the command line ----------------------------------------------------------------------------


def _stats(path, cache):
    env = {**os.environ, "FER_SPARK_MASTER": "local[2]", "FER_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "fer_core", "stats", "--data", str(path), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def test_cli_reads_every_odd_row_it_can_and_counts_the_rest(tmp_path, sample_lines):
    # Classes 1-5 in one file: reordered quoted columns, Usage in lower case, a byte that is not
    # UTF-8, a repeated header, and the end of the .gz cut off.
    lines: list[str | bytes] = []
    for line in sample_lines[:400]:
        label, pixels, usage = line.split(",")
        lines.append(_quoted(f"{usage.lower()},{label},{pixels}"))
    lines[10] = _non_utf8(sample_lines[10])
    lines.insert(200, _quoted("Usage,emotion,pixels"))
    source = _write(
        tmp_path / "everything.csv.gz", lines, header=_quoted("Usage,emotion,pixels"), compress=True
    )
    source.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    readable = zlib.decompressobj(wbits=31).decompress(source.read_bytes()).rpartition(b"\n")[0]
    whole_rows = readable.split(b"\n")[1:]
    expected_faces = sum(1 for row in whole_rows if row.isascii() and not row.startswith(b'"Usage"'))

    completed = _stats(source, tmp_path / "cache")

    assert completed.returncode == 0, completed.stderr[-2000:]
    stats = json.loads(completed.stdout)
    assert stats["rejected"] == {NOT_UTF8: 1, TRUNCATED: 1}
    assert stats["total"] == expected_faces
    assert "Traceback" not in completed.stderr and "\tat " not in completed.stderr


@pytest.mark.parametrize("kind", ["binary", "cut at the start", "only bad rows"])
def test_cli_exits_2_with_one_error_line_when_nothing_is_usable(tmp_path, sample_lines, kind):
    if kind == "binary":
        source = tmp_path / "photo.csv"
        source.write_bytes(np.random.default_rng(1).bytes(20_000))
    elif kind == "cut at the start":
        source = tmp_path / "cut.csv.gz"
        source.write_bytes(gzip.compress(("\n".join([HEADER, *sample_lines[:20]])).encode())[:30])
    else:
        source = _write(tmp_path / "not_utf8.csv", [_non_utf8(line) for line in sample_lines[:20]])

    completed = _stats(source, tmp_path / "cache")

    assert completed.returncode == 2
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and source.name in errors[0]
    assert "Traceback" not in completed.stderr and "\tat " not in completed.stderr
