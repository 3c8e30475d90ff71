"""Two processes run trials of one Optuna study (SQLite file), as workers at scale do."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ratchet.training.model.pruning import make_storage
from tests.training.study_worker import run_worker


@pytest.mark.slow  # 19 s; tests/postgres/test_optuna.py shares a study between two processes in 5 s
def test_two_processes_share_one_study(tmp_path: Path):
    storage, study_name, target = f"sqlite:///{tmp_path / 'optuna.db'}", "shared-study", 4
    # Separate processes, forked from a fresh forkserver that imports the training
    # stack once (not from this process, whose threads a fork would not carry).
    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(
        ["ratchet.training.model.tune", "ratchet.data.schema_inference", "ratchet.training.window", "ratchet.demo.synthetic", "tests.training.study_worker"]
    )
    workers = [
        mp.Process(target=run_worker, args=(storage, study_name, target, str(tmp_path), i)) for i in range(2)
    ]
    for w in workers:
        w.start()
    try:
        make_storage(storage)  # the study's tables, while the workers start
        deadline = time.monotonic() + 240
        while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline and all(w.is_alive() for w in workers), "a worker did not start"
            time.sleep(0.05)
        (tmp_path / "go").touch()  # both start their trials at the same moment
        for w in workers:
            w.join(timeout=240)
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
    assert [w.exitcode for w in workers] == [0, 0]
    reports = [json.loads((tmp_path / f"report-{i}.json").read_text()) for i in range(2)]

    study = optuna.load_study(study_name=study_name, storage=storage)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    # both contributed, and the study holds exactly the trials they ran
    assert all(len(r["ran"]) >= 1 for r in reports), reports
    assert len({r["pid"] for r in reports}) == 2
    ran = sorted(n for r in reports for n in r["ran"])
    assert ran == sorted(t.number for t in study.trials) == sorted(t.number for t in finished)
    for r in reports:
        workers_of_its_trials = {study.trials[n].user_attrs["worker"].rsplit(":", 1)[1] for n in r["ran"]}
        assert workers_of_its_trials == {str(r["pid"])}
    # the study stops at its target (at most one over: both may start the last trial)
    assert target <= len(finished) <= target + 1
    # each worker returns the study's best trial, whichever worker trained it
    assert {r["best_trial"] for r in reports} == {study.best_trial.number}
