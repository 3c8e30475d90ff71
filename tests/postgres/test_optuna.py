"""One Optuna study on Postgres, trials from two processes at once: how the
cluster profile spreads a search over several workers."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import optuna
import pytest

from ratchet.core.settings import Settings
from tests.conftest import ROOT

pytestmark = pytest.mark.postgres

TRIALS_PER_WORKER = 6

# what a worker does: join the study by name and run its share of trials
WORKER = textwrap.dedent(
    """
    import os, pathlib, sys, time
    import optuna
    from ratchet.core.settings import Settings

    storage, study_name, n = Settings().optuna_url, sys.argv[1], int(sys.argv[2])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=storage,
                              sampler=optuna.samplers.TPESampler(seed=int(sys.argv[3])))
    # start together: both workers loaded the study before either runs a trial
    barrier = pathlib.Path(sys.argv[4])
    (barrier / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(barrier.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)

    def objective(trial):
        trial.set_user_attr("pid", os.getpid())
        x = trial.suggest_float("x", -5.0, 5.0)
        layers = trial.suggest_categorical("layers", [1, 2, 3])
        time.sleep(0.05)  # long enough for the two workers' trials to interleave
        return (x - 1.5) ** 2 + layers

    study.optimize(objective, n_trials=n)
    print(os.getpid())
    """
)


def test_two_processes_share_one_study_on_postgres(pg_database, tmp_path, monkeypatch):
    for var in ("RATCHET_OPTUNA_STORAGE", "RATCHET_LEDGER_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RATCHET_PROFILE", "cluster")
    monkeypatch.setenv("RATCHET_POSTGRES_URL", pg_database.url(driver="asyncpg"))  # Prefect's form is accepted
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path))
    storage = Settings().optuna_url
    assert storage == pg_database.url()  # synchronous driver for Optuna

    study = optuna.create_study(study_name="shared", storage=storage, direction="minimize")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, "shared", str(TRIALS_PER_WORKER), str(seed), str(barrier)],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed in (1, 2)
    ]
    pids = []
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err
        pids.append(int(out.split()[-1]))

    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert len(trials) == 2 * TRIALS_PER_WORKER
    assert sorted(t.number for t in trials) == list(range(2 * TRIALS_PER_WORKER))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    by_pid = {pid: [t for t in trials if t.user_attrs["pid"] == pid] for pid in pids}
    assert all(len(ts) == TRIALS_PER_WORKER for ts in by_pid.values())
    # the two workers ran at the same time: each started a trial before the other finished its last
    spans = [(min(t.datetime_start for t in ts), max(t.datetime_complete for t in ts)) for ts in by_pid.values()]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans
    assert study.best_value == min(t.value for t in trials)
    # the trials live in Postgres
    assert pg_database.query("select count(*) from trials") == [(2 * TRIALS_PER_WORKER,)]
