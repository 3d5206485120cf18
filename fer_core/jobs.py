"""Background training jobs for the dashboard: one ``fer_core train`` process per server at a time.

The job is a separate process, so it outlives page switches, browser reloads and Streamlit reruns;
its state lives in files (``runs/ACTIVE_JOB.json``, the run's ``progress.json`` and ``curves.csv``)
that any page can read. Stop asks the job to end cleanly (the run folder's STOP file), keeping the
checkpoint from which the same run resumes.
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
from fer_core.config import TrainConfig
from fer_core.train import STOP_FILE

ACTIVE_FILE = "ACTIVE_JOB.json"
LOG_FILE = "train.log"


class JobBusy(RuntimeError):
    """A training job is already running on this server."""

    def __init__(self, job: Job) -> None:
        self.job = job
        super().__init__(f"training run {job.name!r} is already running")


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
    """The job running now, if any; a record left by a dead process is cleared."""
    record = (runs_dir or default_runs_dir()) / ACTIVE_FILE
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
    if not name or any(part in name for part in ("/", "\\", "..")):
        raise ValueError(f"a run name must be a plain folder name, got {name!r}")
    run_dir = runs_dir / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STOP_FILE).unlink(missing_ok=True)  # left by a job that died before honouring it
    (run_dir / "progress.json").unlink(missing_ok=True)
    command = [sys.executable, "-m", "fer_core", "train", "--out", str(run_dir), *config_to_args(config)]
    if data:
        command += ["--data", str(data)]
    if spark_master:
        command += ["--spark-master", spark_master]
    with open(run_dir / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # not killed with the server's process group or a page's rerun
            cwd=Path(__file__).resolve().parent.parent,
        )
    job = Job(name=name, run_dir=str(run_dir), pid=process.pid, started=time.time(), data=str(data or ""))
    (runs_dir / ACTIVE_FILE).write_text(json.dumps(asdict(job)))
    return job


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
        progress = json.loads((run_dir / "progress.json").read_text())
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


def last_error(run_dir: str | os.PathLike) -> str | None:
    """The ``error:`` line the CLI printed, if the run failed with one."""
    log = Path(run_dir) / LOG_FILE
    if not log.exists():
        return None
    errors = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error:")]
    return errors[-1].removeprefix("error:").strip() if errors else None
