"""Background jobs for the dashboard: one ``fer_core train`` and one ``fer_core batch`` process per
server at a time.

A job is a separate process, so it outlives page switches, browser reloads and Streamlit reruns;
its state lives in files (``runs/ACTIVE_JOB.json`` or ``runs/batch/ACTIVE_BATCH.json``, the run's
``progress.json`` and ``curves.csv``) that any page can read. Stop asks a training job to end cleanly
(the run folder's STOP file), keeping the checkpoint from which the same run resumes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from fer_core.artifacts import runs_dir as default_runs_dir
from fer_core.artifacts import staged
from fer_core.batch import BatchConfig
from fer_core.config import TrainConfig
from fer_core.train import STOP_FILE

ACTIVE_FILE = "ACTIVE_JOB.json"
LOG_FILE = "train.log"
BATCH_FOLDER = "batch"  # inside the runs folder: one folder per batch job
BATCH_ACTIVE_FILE = "ACTIVE_BATCH.json"
BATCH_LOG = "batch.log"
BATCH_RESULTS = "results.parquet"
BATCH_FILE = "batch.json"  # what the job was asked: its input and settings
PROGRESS_FILE = "progress.json"


class JobBusy(RuntimeError):
    """A job of the same kind (training or batch) is already running on this server."""

    def __init__(self, job: Job, kind: str = "training") -> None:
        self.job = job
        super().__init__(f"{kind} run {job.name!r} is already running")


@dataclass(frozen=True)
class Job:
    name: str
    run_dir: str
    pid: int
    started: float
    data: str


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return False
    return True


def active_job(runs_dir: Path | None = None) -> Job | None:
    """The training job running now, if any; a record left by a dead process is cleared."""
    return _active((runs_dir or default_runs_dir()) / ACTIVE_FILE)


def _active(record: Path) -> Job | None:
    try:
        job = Job(**json.loads(record.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if _alive(job.pid):
        return job
    record.unlink(missing_ok=True)
    return None


def start_job(
    config: TrainConfig,
    name: str,
    *,
    data: str | os.PathLike | None = None,
    spark_master: str | None = None,
    runs_dir: Path | None = None,
) -> Job:
    """Start ``python -m fer_core train`` for ``config`` in ``runs_dir/name``; resumes if it exists.

    Raises :class:`JobBusy` if a job is already running.
    """
    from fer_core.cli import config_to_args

    runs_dir = runs_dir or default_runs_dir()
    running = active_job(runs_dir)
    if running:
        raise JobBusy(running)
    _check_name(name)
    run_dir = runs_dir / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STOP_FILE).unlink(missing_ok=True)  # left by a job that died before honouring it
    (run_dir / PROGRESS_FILE).unlink(missing_ok=True)
    command = [sys.executable, "-m", "fer_core", "train", "--out", str(run_dir), *config_to_args(config)]
    if data:
        command += ["--data", str(data)]
    if spark_master:
        command += ["--spark-master", spark_master]
    return _launch(command, name, run_dir, run_dir / LOG_FILE, runs_dir / ACTIVE_FILE, data)


def _check_name(name: str) -> None:
    if not name or any(part in name for part in ("/", "\\", "..")):
        raise ValueError(f"a run name must be a plain folder name, got {name!r}")


def _launch(command: list[str], name: str, run_dir: Path, log_path: Path, record: Path, data) -> Job:
    """Start ``command`` as a process of its own, logging to ``log_path``, recorded in ``record``."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # not killed with the server's process group or a page's rerun
            cwd=Path(__file__).resolve().parent.parent,
        )
    job = Job(name=name, run_dir=str(run_dir), pid=process.pid, started=time.time(), data=str(data or ""))
    with staged(record) as staging:  # a half-written record would read as "no job running"
        staging.write_text(json.dumps(asdict(job)))
    return job


def batch_root(runs_dir: Path | None = None) -> Path:
    """Where the dashboard's batch jobs keep their folders (results, progress, log)."""
    return (runs_dir or default_runs_dir()) / BATCH_FOLDER


def active_batch(runs_dir: Path | None = None) -> Job | None:
    """The batch job running now, if any; a record left by a dead process is cleared."""
    return _active(batch_root(runs_dir) / BATCH_ACTIVE_FILE)


def start_batch(
    source: str | os.PathLike,
    name: str,
    config: BatchConfig = BatchConfig(),
    *,
    spark_master: str | None = None,
    runs_dir: Path | None = None,
) -> Job:
    """Start ``python -m fer_core batch`` on ``source`` into ``runs/batch/name/results.parquet``.

    Raises :class:`JobBusy` if a batch job is already running (they share the machine's cores).
    """
    from fer_core.cli import batch_config_to_args

    root = batch_root(runs_dir)
    running = active_batch(runs_dir)
    if running:
        raise JobBusy(running, kind="batch")
    _check_name(name)
    run_dir = root / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / BATCH_FILE).write_text(json.dumps({"source": str(source), "config": asdict(config)}))
    # Listed (as starting) from now on; the process rewrites it as Spark's tasks finish.
    (run_dir / PROGRESS_FILE).write_text(json.dumps({"step": 0, "total_steps": 0, "status": "starting"}))
    command = [
        sys.executable, "-m", "fer_core", "batch", str(source), "--out", str(run_dir / BATCH_RESULTS),
        "--progress-json", str(run_dir / PROGRESS_FILE), *batch_config_to_args(config),
    ]  # fmt: skip
    if spark_master:
        command += ["--spark-master", spark_master]
    return _launch(command, name, run_dir, run_dir / BATCH_LOG, root / BATCH_ACTIVE_FILE, source)


def batch_source(run_dir: str | os.PathLike) -> str | None:
    """The input a batch job of the dashboard scored (None if its folder does not say)."""
    try:
        return json.loads((Path(run_dir) / BATCH_FILE).read_text())["source"]
    except (OSError, ValueError, KeyError):
        return None


def batch_runs(runs_dir: Path | None = None) -> list[Path]:
    """The batch job folders of this server, newest first."""
    root = batch_root(runs_dir)
    found = [path.parent for path in root.glob(f"*/{PROGRESS_FILE}")] if root.is_dir() else []
    return sorted(found, key=lambda path: -(path / PROGRESS_FILE).stat().st_mtime)


def stop_job(run_dir: str | os.PathLike) -> None:
    """Ask the job in ``run_dir`` to stop after its current step; its checkpoint is kept."""
    Path(run_dir, STOP_FILE).touch()


@dataclass(frozen=True)
class JobState:
    """What the dashboard shows about a run: progress numbers, status and the log's last error."""

    step: int
    total_steps: int
    elapsed_s: float
    eta_s: float | None
    status: str  # starting, running, done, stopped, failed

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


def job_state(run_dir: str | os.PathLike, running: bool) -> JobState:
    """Read a run's progress; a run that is not running and never finished is reported failed."""
    run_dir = Path(run_dir)
    try:
        progress = json.loads((run_dir / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        progress = {}
    status = progress.get("status", "starting")
    if not running and status in ("starting", "running"):
        status = "failed" if not (run_dir / STOP_FILE).exists() else "stopped"
    return JobState(
        step=int(progress.get("step", 0)),
        total_steps=int(progress.get("total_steps", 0)),
        elapsed_s=float(progress.get("elapsed_s", 0.0)),
        eta_s=progress.get("eta_s"),
        status=status,
    )


def last_error(run_dir: str | os.PathLike, log_name: str = LOG_FILE) -> str | None:
    """The ``error:`` line the CLI printed, if the run failed with one."""
    log = Path(run_dir) / log_name
    if not log.exists():
        return None
    errors = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error:")]
    return errors[-1].removeprefix("error:").strip() if errors else None


@dataclass(frozen=True)
class RunSummary:
    """One training run of this server, as the Train page lists it."""

    name: str
    run_dir: str
    preset: str
    status: str  # running, done, stopped, failed
    step: int
    total_steps: int
    public_accuracy: float | None  # of the saved model, from its card (None until the run finished)
    updated: float  # when the run last wrote a file (seconds since the epoch)


def training_runs(runs_dir: Path | None = None) -> list[RunSummary]:
    """Every training run in the runs folder (each has a ``config.json``), newest first."""
    from fer_core.artifacts import CARD_FILE

    root = runs_dir or default_runs_dir()
    running = active_job(root)
    runs = []
    for config_path in root.glob("*/config.json") if root.is_dir() else []:
        run_dir = config_path.parent
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError):
            continue  # a folder being written, or not a run
        state = job_state(run_dir, running=running is not None and Path(running.run_dir) == run_dir)
        try:
            card = json.loads((run_dir / "model" / CARD_FILE).read_text())
            accuracy = card.get("metrics", {}).get("PublicTest", {}).get("accuracy")
        except (OSError, ValueError):
            accuracy = None
        files = [run_dir / name for name in (PROGRESS_FILE, "curves.csv", "config.json")]
        updated = max(path.stat().st_mtime for path in files if path.exists())
        total = state.total_steps or int(config.get("steps", 0))
        runs.append(
            RunSummary(
                run_dir.name, str(run_dir), config.get("preset", "?"), state.status, state.step, total,
                accuracy, updated,
            )
        )  # fmt: skip
    return sorted(runs, key=lambda run: -run.updated)


def runs_table(runs: list[RunSummary]):
    """The runs as a table for people: name, preset, status, steps, PublicTest accuracy, date."""
    import datetime as dt

    import pandas as pd

    return pd.DataFrame(
        {
            "run": [run.name for run in runs],
            "preset": [run.preset for run in runs],
            "status": [run.status for run in runs],
            "steps": [f"{run.step:,} / {run.total_steps:,}" for run in runs],
            "PublicTest accuracy": [run.public_accuracy for run in runs],
            "date": [dt.datetime.fromtimestamp(run.updated) for run in runs],
        }
    )


def run_curves(runs: list[RunSummary], names: list[str]) -> dict:
    """The curves (see :func:`fer_core.train.read_curves`) of the named runs that have some, by name."""
    from fer_core.train import read_curves

    by_name = {run.name: run for run in runs}
    curves = {name: read_curves(by_name[name].run_dir) for name in names if name in by_name}
    return {name: table for name, table in curves.items() if table is not None and len(table)}
