"""The command line, run as a user runs it: a real process, real Spark, real TensorFlow."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from fer_core.emotions import EMOTIONS, SPLITS

PER_CLASS_KEYS = {"support", "predicted", "true_positives", "recall", "precision", "f1"}


def fer(*args, cache=None, check=True):
    env = {**__import__("os").environ, "FER_SPARK_MASTER": "local[2]"}
    if cache:
        env["FER_CACHE_DIR"] = str(cache)
    completed = subprocess.run(
        [sys.executable, "-m", "fer_core", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"exit {completed.returncode}: {completed.stderr[-2000:]}")
    return completed


@pytest.fixture(scope="module")
def slice_csv(tmp_path_factory, full_csv):
    """Real rows of every split of the full data set, with two malformed rows mixed in."""
    lines = []
    with gzip.open(full_csv, "rt") as stream:
        header = next(stream)
        for index, line in enumerate(stream):
            if index % 12 == 0:
                lines.append(line)
    lines.insert(50, "3,1 2 3,Training\n")
    lines.insert(90, "\n")
    path = tmp_path_factory.mktemp("slice") / "slice.csv"
    path.write_text(header + "".join(lines))
    return path


def test_every_command_has_help():
    for command in ("stats", "prepare", "train", "evaluate", "ship", "predict"):
        assert "usage:" in fer(command, "--help").stdout
    train_help = fer("train", "--help").stdout
    for option in ("--preset", "--out", "--learning-rate", "--filters", "--rotation", "--spark-master"):
        assert option in train_help


def test_stats_json_on_the_shipped_sample(tmp_path):
    stats = json.loads(fer("stats", "--json", cache=tmp_path).stdout)
    assert set(stats["rows"]) == set(SPLITS)
    assert all(set(rows) == set(EMOTIONS) for rows in stats["rows"].values())
    assert stats["total"] == sum(sum(rows.values()) for rows in stats["rows"].values())
    assert stats["rejected"] == {}


def test_end_to_end_from_csv_to_prediction(tmp_path, slice_csv, photos):
    cache = tmp_path / "cache"
    stats = json.loads(
        fer("stats", "--data", slice_csv, "--json", "--rejects", tmp_path / "rejects.csv", cache=cache).stdout
    )
    assert stats["rejected"] == {"pixel count not 2304": 1, "empty line": 1}
    assert (tmp_path / "rejects.csv").exists()

    prepared = json.loads(
        fer("prepare", "--data", slice_csv, "--preset", "seed", "--json", cache=cache).stdout
    )
    assert prepared["shapes"]["PrivateTest"][1:] == [28, 28]

    run = tmp_path / "run"
    trained = json.loads(
        fer(
            "train",
            "--data",
            slice_csv,
            "--preset",
            "seed",
            "--steps",
            "60",
            "--eval-every",
            "30",
            "--out",
            run,
            cache=cache,
        ).stdout
    )
    assert trained["steps"] == 60 and set(trained["accuracy"]) == set(SPLITS)

    report = json.loads(
        fer(
            "evaluate",
            "--data",
            slice_csv,
            "--model",
            run / "model",
            "--split",
            "PrivateTest",
            "--json",
            cache=cache,
        ).stdout
    )
    assert report["n"] == sum(stats["rows"]["PrivateTest"].values()) and report["n"] == sum(
        map(sum, report["confusion_matrix"])
    )
    assert report["accuracy"] == pytest.approx(trained["accuracy"]["PrivateTest"], abs=1e-4)
    assert all(set(values) == PER_CLASS_KEYS for values in report["per_class"].values())

    names = ["single_face.jpg", "multi_face.jpg", "no_face.jpg"]
    results = json.loads(
        fer("predict", "--model", run / "model", "--json", *[photos / n for n in names]).stdout
    )
    assert [len(result["faces"]) for result in results] == [1, 5, 0]
    for face in results[1]["faces"]:
        assert len(face["box"]) == 4 and face["emotion"] in EMOTIONS
        assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-4)

    # A warm restart from the model, then both shipped as one ensemble that predicts with crops TTA.
    restart = tmp_path / "restart"
    common = ("--data", slice_csv, "--preset", "seed", "--eval-every", "30")
    fer("train", *common, "--steps", "30", "--init-from", run / "model", "--out", restart, cache=cache)
    shipped = tmp_path / "shipped"
    ship = ("ship", run / "model", restart / "model", "--out", shipped, "--tta", "crops", "--data", slice_csv)
    summary = json.loads(fer(*ship, "--weights-precision", "float16", cache=cache).stdout)
    card = json.loads((shipped / "card.json").read_text())
    assert summary["tta"] == "crops" == card["preprocessing"]["tta"]
    assert (
        card["weights_precision"]["precision"] == "float16"
        and card["weights_precision"]["max_abs_change"] > 0
    )
    assert [member["name"] for member in card["training"]["members"]] == ["run", "restart"]
    # The first run is in both members' lineage and counts once.
    assert [run["steps"] for run in card["training"]["lineage"]] == [60, 30]
    assert card["training"]["steps"] == 90
    assert "An ensemble: the average of 2 networks" in (shipped / "README.md").read_text()
    evaluate = ("evaluate", "--data", slice_csv, "--model", shipped, "--split", "PublicTest", "--json")
    own = json.loads(fer(*evaluate, cache=cache).stdout)
    assert own["accuracy"] == pytest.approx(card["metrics"]["PublicTest"]["accuracy"], abs=1e-4)
    assert own["confusion_matrix"] == card["metrics"]["PublicTest"]["confusion_matrix"]
    refused = fer("ship", run / "model", "--out", tmp_path / "other", cache=cache, check=False)
    assert refused.returncode == 2 and "trained on other data" in refused.stderr


def test_predict_without_detection_and_with_a_broken_file(tmp_path, photos):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really")
    results = json.loads(fer("predict", "--no-detect", "--json", photos / "no_face.jpg", broken).stdout)
    assert len(results[0]["faces"]) == 1 and results[0]["error"] is None
    assert results[1]["faces"] == [] and results[1]["error"]


@pytest.mark.parametrize(
    "args",
    [
        ("stats", "--data", "/no/such/file.csv"),
        ("evaluate", "--model", "/no/such/model"),
        ("train", "--out", "x", "--learning-rate", "-1"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(args):
    completed = fer(*args, check=False)
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert "Traceback" not in completed.stderr
