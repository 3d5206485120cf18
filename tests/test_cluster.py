"""The pipeline on a real Spark standalone cluster: a master and a worker on loopback, the CLI as a client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyspark
import pytest

from fer_core.launch import free_port


def _wait_for_port(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on port {port}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``spark://127.0.0.1:PORT`` with one 2-core worker whose executors run this interpreter."""
    home = Path(pyspark.__file__).resolve().parent
    work = tmp_path_factory.mktemp("spark-work")
    env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable}
    spark_class = str(home / "bin" / "spark-class")
    port = free_port()
    master_url = f"spark://127.0.0.1:{port}"
    processes = []
    with open(work / "cluster.log", "w") as log:
        processes.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--webui-port",
                    str(free_port()),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        _wait_for_port(port)
        processes.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    master_url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "2",
                    "--memory",
                    "2g",
                    "--work-dir",
                    str(work),
                    "--webui-port",
                    str(free_port()),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        time.sleep(5)  # the worker registers with the master
        yield master_url, env
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)


def _cli(*args, env):
    completed = subprocess.run(
        [sys.executable, "-m", "fer_core", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


def test_stats_and_prepare_on_a_standalone_cluster_match_local(cluster, tmp_path, sample_csv):
    master_url, env = cluster
    remote = {**env, "FER_CACHE_DIR": str(tmp_path / "remote")}
    local = {**env, "FER_CACHE_DIR": str(tmp_path / "local"), "FER_SPARK_MASTER": "local[2]"}

    on_cluster = _cli("stats", "--data", sample_csv, "--json", "--spark-master", master_url, env=remote)
    on_local = _cli("stats", "--data", sample_csv, "--json", env=local)
    assert on_cluster["rows"] == on_local["rows"]

    prepared = _cli(
        "prepare",
        "--data",
        sample_csv,
        "--preset",
        "seed",
        "--json",
        "--spark-master",
        master_url,
        env=remote,
    )
    assert prepared["shapes"]["Training"][1:] == [28, 28]
    assert prepared["shapes"]["Training"][0] > on_cluster["rows"]["Training"]["angry"] * 4


def test_batch_on_a_standalone_cluster_matches_predict(
    cluster, tmp_path, photo_folder, sample_lines, rows_match
):
    """The model and the detector run on the cluster's executors (fer_core shipped as an archive, the
    model as a broadcast); every row matches fer_core.predict run here."""
    import numpy as np

    from fer_core.artifacts import fast_model_path, load_model
    from fer_core.batch import PROBABILITY_COLUMNS, read_results
    from fer_core.data import IMAGE_SUFFIXES
    from fer_core.predict import analyze_images, predict_faces

    master_url, env = cluster
    remote = {**env, "FER_CACHE_DIR": str(tmp_path / "remote")}
    model = load_model(fast_model_path())  # the model the batch uses by default

    out = tmp_path / "photos.csv"
    photos = _cli("batch", photo_folder, "--out", out, "--json", "--spark-master", master_url, env=remote)
    results = read_results(out)
    files = sorted(path for path in photo_folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
    for path, result in zip(files, analyze_images([str(path) for path in files], model), strict=True):
        rows_match(results[results["path"] == str(path)], result)
    assert photos["images"] == len(files) and photos["errors"] == 2

    csv = tmp_path / "faces.csv"
    csv.write_text("\n".join(["emotion,pixels,Usage", *sample_lines[:40], "7,1 2,Training"]) + "\n")
    _cli("batch", csv, "--out", tmp_path / "faces", "--json", "--spark-master", master_url, env=remote)
    scored = read_results(tmp_path / "faces")  # Parquet written by the executors
    faces = np.array([[int(v) for v in line.split(",")[1].split()] for line in sample_lines[:40]], np.uint8)
    expected = predict_faces(model, faces.reshape(-1, 48, 48))
    probabilities = scored[list(PROBABILITY_COLUMNS)].to_numpy(np.float32)
    np.testing.assert_allclose(probabilities[:40], expected, atol=1e-4)
    assert scored["error"].iloc[40] == "rejected: label outside 0..6"
