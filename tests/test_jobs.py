"""Background training jobs: one at a time, Stop keeps the checkpoint, the same run resumes."""

from __future__ import annotations

import time

import pytest

from fer_core import jobs
from fer_core.cli import build_parser, config_to_args
from fer_core.models import PRESETS, preset_config
from fer_core.train import read_curves


def _wait(condition, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(1)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_to_args_round_trips_through_the_cli(name):
    from fer_core.cli import _train_config

    config = preset_config(name, dropout=0.25, flip=not preset_config(name).flip)
    args = build_parser().parse_args(["train", "--out", "x", *config_to_args(config)])
    assert _train_config(args) == config


def test_one_job_at_a_time_stop_and_resume(tmp_path):
    config = preset_config("seed", steps=600, eval_every=100, batch_size=16, max_train_faces=300)
    job = jobs.start_job(config, "job-a", runs_dir=tmp_path)
    assert jobs.active_job(tmp_path) == job

    with pytest.raises(jobs.JobBusy, match="job-a"):
        jobs.start_job(config, "job-b", runs_dir=tmp_path)

    # Stop once the first validation point is on the curves.
    _wait(lambda: (curves := read_curves(job.run_dir)) is not None and curves["val_accuracy"].notna().any())
    jobs.stop_job(job.run_dir)
    _wait(lambda: jobs.active_job(tmp_path) is None)
    stopped = jobs.job_state(job.run_dir, running=False)
    assert stopped.status == "stopped" and 0 < stopped.step < config.steps
    assert (tmp_path / "job-a" / "backup").exists()

    resumed = jobs.start_job(config, "job-a", runs_dir=tmp_path)
    _wait(lambda: jobs.active_job(tmp_path) is None)
    done = jobs.job_state(resumed.run_dir, running=False)
    assert done.status == "done" and done.step == config.steps
    assert (tmp_path / "job-a" / "model" / "card.json").exists()


def test_a_failing_job_reports_its_error(tmp_path):
    config = preset_config("seed", steps=20, eval_every=10)
    job = jobs.start_job(config, "bad-data", data=tmp_path / "missing.csv", runs_dir=tmp_path)
    _wait(lambda: jobs.active_job(tmp_path) is None, seconds=120)
    assert jobs.job_state(job.run_dir, running=False).status == "failed"
    assert "not found" in jobs.last_error(job.run_dir)
    with pytest.raises(ValueError, match="plain folder name"):
        jobs.start_job(config, "../escape", runs_dir=tmp_path)
