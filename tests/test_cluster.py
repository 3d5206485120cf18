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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
    port = _free_port()
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
                    str(_free_port()),
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
                    str(_free_port()),
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
