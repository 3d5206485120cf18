"""Starting the dashboard and Spark quickly: the server's warm-up and the JVM's class archive, with real
server processes, real JVMs and the shipped sample."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from browsers import ROOT, streamlit_server

from fer_core.spark import adopt_class_archive


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the process's descendants, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid:
                child = int(stat.parent.name)
                found.append((child, (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
                found += _descendants(child)
        except (OSError, ValueError, IndexError):
            continue  # a process that ended while we looked
    return found


def test_the_server_reads_the_default_data_and_starts_spark_before_any_visit(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "FER_CACHE_DIR": str(cache)}
    with streamlit_server(tmp_path / "streamlit.log", env=env) as url:
        assert url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 240
        # No page is requested: only the warm-up that `serve` starts with the process can fill the cache.
        while not list(cache.glob("faces-*.json")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert list(cache.glob("faces-*.json")), (tmp_path / "streamlit.log").read_text()[-3000:]
        port = url.rsplit(":", 1)[1]
        servers = [
            pid
            for pid, command in _descendants(os.getpid())
            if "fer_core serve" in command and port in command
        ]
        assert len(servers) == 1
        assert any("java" in command for _, command in _descendants(servers[0])), "the server runs Spark"


def test_the_first_command_leaves_a_class_archive_that_later_jvms_start_with(tmp_path, monkeypatch):
    archives = tmp_path / "jvm"
    env = {**os.environ, "FER_SPARK_CLASS_ARCHIVE_DIR": str(archives)}
    command = [sys.executable, "-m", "fer_core", "stats", "--json"]
    outputs = []
    for run in ("records", "uses"):
        env["FER_CACHE_DIR"] = str(tmp_path / f"cache-{run}")  # an empty cache: Spark reads the data
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append(json.loads(done.stdout))
        written = sorted(path.name for path in archives.iterdir())
        assert len(written) == 1 and written[0].endswith(".jsa"), written  # no recording left behind
    assert outputs[0] == outputs[1]

    # A truncated archive (a full disk, a JVM killed while writing) would crash every JVM: never adopted.
    archive = next(archives.iterdir())
    truncated = tmp_path / "truncated.jsa.tmp"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 3])
    crashes = tmp_path / "working-directory"
    crashes.mkdir()
    monkeypatch.chdir(crashes)
    assert not adopt_class_archive(truncated, tmp_path / "adopted.jsa")
    assert not truncated.exists() and not (tmp_path / "adopted.jsa").exists()
    assert not list(crashes.iterdir())  # the crashed JVM's hs_err_pid log is not left where we stand
    copy = tmp_path / "copy.jsa.tmp"
    copy.write_bytes(archive.read_bytes())
    assert adopt_class_archive(copy, tmp_path / "adopted.jsa") and (tmp_path / "adopted.jsa").exists()
