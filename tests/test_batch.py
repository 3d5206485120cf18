"""Batch inference on Spark in local mode: a folder of real photos with broken files, a FER2013 CSV with
bad lines, Parquet with an image column, and the CLI with its progress. Every row is checked against
the photo path of fer_core.predict run directly on the driver."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from fer_core import batch
from fer_core.artifacts import fast_model_path, load_model
from fer_core.batch import OUTPUT_COLUMNS, PROBABILITY_COLUMNS, BatchConfig, read_results, run_batch
from fer_core.data import IMAGE_SUFFIXES
from fer_core.emotions import EMOTIONS
from fer_core.predict import analyze_images, predict_faces

ATOL = 1e-4  # as in conftest.rows_match


@pytest.fixture(scope="module")
def model():
    return load_model(fast_model_path())  # the model the batch uses by default (models/lite)


@pytest.fixture(scope="module")
def folder_run(spark, photo_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch-out") / "faces.csv"
    summary = run_batch(photo_folder, out)
    return summary, read_results(out)


def _photo_files(folder) -> list:
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)


def test_every_photo_of_a_folder_gets_the_rows_predict_gives(folder_run, photo_folder, model, rows_match):
    summary, results = folder_run
    files = _photo_files(photo_folder)
    assert list(results.columns) == list(OUTPUT_COLUMNS)
    assert set(results["path"]) == {str(path) for path in files}  # notes.txt skipped, subfolders searched
    direct = analyze_images([str(path) for path in files], model)
    for path, result in zip(files, direct, strict=True):
        rows_match(results[results["path"] == str(path)], result)
    assert summary.images == len(files)
    assert summary.faces == sum(len(result.faces) for result in direct) == results["face"].notna().sum()
    assert summary.errors == 2 and summary.no_face == 1
    assert sum(summary.emotions.values()) == summary.faces and set(summary.emotions) == set(EMOTIONS)


def test_broken_files_and_faceless_photos_get_a_row_each(folder_run, photo_folder):
    _, results = folder_run
    by_name = {path.rsplit("/", 1)[-1]: rows for path, rows in results.groupby("path")}
    assert "truncated or damaged" in by_name["truncated.jpg"]["error"].iloc[0]
    assert "not an image" in by_name["holiday.png"]["error"].iloc[0]
    assert by_name["no_face.jpg"][["face", "emotion", "error"]].isna().all(axis=None)
    assert len(by_name["multi_face.jpg"]) == 5
    # The copy in a subfolder has the same faces as its original.
    copy, original = by_name["copy.JPG"], by_name["single_face.jpg"]
    np.testing.assert_allclose(
        copy[list(PROBABILITY_COLUMNS)], original[list(PROBABILITY_COLUMNS)], atol=ATOL
    )


def test_a_file_too_large_to_be_a_photo_is_not_read(spark, photos, tmp_path):
    from fer_core.predict import MAX_IMAGE_BYTES

    folder = tmp_path / "camera"
    folder.mkdir()
    (folder / "single_face.jpg").write_bytes((photos / "single_face.jpg").read_bytes())
    with open(folder / "panorama.jpg", "wb") as huge:
        huge.truncate(MAX_IMAGE_BYTES + 1)  # sparse: nothing to read, had Spark tried
    run_batch(folder, tmp_path / "out.csv")
    results = read_results(tmp_path / "out.csv").set_index("path")
    assert results.loc[str(folder / "panorama.jpg"), "error"].startswith("not read: larger than 25 MB")
    assert results.loc[str(folder / "single_face.jpg"), "face"] == 1


def _fer_line(label, pixels, usage="PrivateTest") -> str:
    return f"{label},{' '.join(map(str, pixels))},{usage}"


def test_a_fer2013_csv_gets_one_row_per_line(spark, sample_lines, tmp_path, model):
    good = sample_lines[:80]
    bad = ["9,1 2 3,Training", "", _fer_line(3, [300] * 2304)]
    path = tmp_path / "faces.csv"
    path.write_text("\n".join(["emotion,pixels,Usage", *good, *bad]) + "\n")
    summary = run_batch(path, tmp_path / "scored")  # a Parquet folder
    results = read_results(tmp_path / "scored")
    assert (tmp_path / "scored" / "_SUCCESS").exists()
    # Line numbers count the header as line 1.
    assert results["path"].tolist() == [f"faces.csv:{line}" for line in range(2, len(good) + len(bad) + 2)]
    faces = np.array([[int(v) for v in line.split(",")[1].split()] for line in good], np.uint8).reshape(
        -1, 48, 48
    )
    expected = predict_faces(model, faces)
    scored = results.iloc[: len(good)]
    np.testing.assert_allclose(scored[list(PROBABILITY_COLUMNS)].to_numpy(np.float32), expected, atol=ATOL)
    assert scored["emotion"].tolist() == [EMOTIONS[i] for i in expected.argmax(axis=1)]
    assert (scored[["x", "y", "w", "h"]].to_numpy() == [0, 0, 48, 48]).all()
    assert results["error"].iloc[len(good) :].tolist() == [
        "rejected: label outside 0..6",
        "rejected: empty line",
        "rejected: pixel outside 0..255",
    ]
    assert (
        summary.faces == len(good) and summary.errors == len(bad) and summary.images == len(good) + len(bad)
    )


def test_parquet_with_an_image_column_scores_like_the_folder(spark, folder_run, photos, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["single_face.jpg", "multi_face.jpg", "no_face.jpg"]
    # The Hugging Face layout: image = struct<bytes, path>.
    images = [{"bytes": (photos / name).read_bytes(), "path": name} for name in names]
    pq.write_table(pa.table({"image": images, "label": [0, 1, 2]}), tmp_path / "photos.parquet")
    run_batch(tmp_path / "photos.parquet", tmp_path / "scored.csv")
    results = read_results(tmp_path / "scored.csv")
    _, from_folder = folder_run
    for name in names:
        rows = results[results["path"] == name]
        expected = from_folder[from_folder["path"].str.endswith("/" + name)]
        assert len(rows) == len(expected)
        np.testing.assert_allclose(
            rows[list(PROBABILITY_COLUMNS)].to_numpy(float),
            expected[list(PROBABILITY_COLUMNS)].to_numpy(float),
            atol=ATOL,
        )


def test_the_cli_shows_spark_progress_and_writes_it_for_the_dashboard(spark, photo_folder, tmp_path, capsys):
    from fer_core.cli import main

    out, progress = tmp_path / "faces.csv", tmp_path / "progress.json"
    code = main(["batch", str(photo_folder), "--out", str(out), "--detector", "haar", "--json",
                 "--progress-json", str(progress)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["images"] == len(_photo_files(photo_folder)) and summary["errors"] == 2
    assert "tasks" in captured.err and "100%" in captured.err  # the bar on stderr
    state = json.loads(progress.read_text())
    assert state["status"] == "done" and state["step"] == state["total_steps"] > 0
    assert state["faces"] == summary["faces"] == read_results(out)["face"].notna().sum()


def test_the_cli_round_trips_a_batch_config():
    from fer_core.cli import batch_config_to_args, build_parser

    config = BatchConfig(model="models/seed", detect=False, detector="haar", whole_if_none=True, tta="flip")
    args = build_parser().parse_args(["batch", "in", "--out", "out.csv", *batch_config_to_args(config)])
    assert (args.model, args.no_detect, args.detector, args.whole_if_none, args.tta) == (
        "models/seed", True, "haar", True, "flip"
    )  # fmt: skip


def test_a_folder_that_is_not_a_batch_output_is_never_overwritten(photo_folder, tmp_path):
    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="not the output of an earlier batch"):
        run_batch(photo_folder, precious)
    assert (precious / "thesis.tex").exists()
    with pytest.raises(ValueError, match="unknown detector"):
        run_batch(photo_folder, tmp_path / "out.csv", BatchConfig(detector="opencv-dnn"))
    with pytest.raises(ValueError, match="not found"):
        run_batch(tmp_path / "nowhere", tmp_path / "out.csv")


def test_a_photo_that_breaks_the_detector_fails_alone(photos, model, monkeypatch):
    """score_photos, as each Spark task runs it: an exception for one photo becomes that row's error."""
    import fer_core.predict

    real = fer_core.predict.analyze_images

    def fragile(sources, loaded, *, names, **options):
        if any(name.endswith("multi_face.jpg") for name in names):
            raise RuntimeError("detector crashed")
        return real(sources, loaded, names=names, **options)

    monkeypatch.setattr(fer_core.predict, "analyze_images", fragile)
    names = ["single_face.jpg", "multi_face.jpg", "no_face.jpg"]
    rows = batch.score_photos(
        [0] * 3, names, [(photos / name).read_bytes() for name in names], model, BatchConfig()
    )
    assert rows.loc[rows["path"] == "multi_face.jpg", "error"].tolist() == ["RuntimeError: detector crashed"]
    assert rows.loc[rows["path"] == "single_face.jpg", "face"].tolist() == [1]
    assert rows.loc[rows["path"] == "no_face.jpg", "error"].isna().all()


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_an_uploaded_zip_is_unpacked_once_and_may_not_escape(photos, tmp_path):
    content = _zip({"trip/day1/single_face.jpg": (photos / "single_face.jpg").read_bytes()})
    folder = batch.unpack_upload(content)
    assert (folder / "trip" / "day1" / "single_face.jpg").read_bytes() == (
        photos / "single_face.jpg"
    ).read_bytes()
    assert batch.unpack_upload(content) == folder
    assert batch.check_server_folder(folder) == folder.resolve()  # the upload area is readable
    with pytest.raises(ValueError, match="outside the archive"):
        batch.extract_zip(_zip({"../../etc/cron.d/evil": b"x"}), tmp_path / "unpacked")
    assert not (tmp_path / "unpacked").exists()
    with pytest.raises(ValueError, match="not a zip"):
        batch.extract_zip(b"PK but no zip", tmp_path / "unpacked")


def test_a_server_folder_outside_the_allowed_roots_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not in a data folder"):
        batch.check_server_folder(tmp_path)


def test_a_worker_reloads_a_model_whose_card_changed(monkeypatch):
    """Workers keep a loaded model per Python process; a re-measured card (say a new calibration) with
    the same weights is another model, not the cached one."""
    from fer_core.artifacts import CARD_FILE

    monkeypatch.setattr(batch, "limit_threads", lambda *args: None)  # this process is not a worker

    files = batch.model_files(None)
    first = batch.worker_model(files)
    assert batch.worker_model(dict(files)) is first
    card = json.loads(files[CARD_FILE])
    card["name"] = "recalibrated"
    second = batch.worker_model({**files, CARD_FILE: json.dumps(card).encode()})
    assert second is not first and second.card["name"] == "recalibrated"
