"""Optuna storage, pruner and a pruning callback that can travel to training ranks.

Kept apart from ``ratchet.training.model.tune`` so a training rank that unpickles the
callback imports Optuna, not MLflow or pandas.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna_integration import PyTorchLightningPruningCallback


def make_storage(
    url: str,
    *,
    heartbeat_s: int | None = None,
    on_stale: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> optuna.storages.RDBStorage:
    """RDB storage for ``url``: a SQLite file in the embedded profile, a database
    server (``postgresql://...``) at scale. Several processes may run trials of one
    study against it. SQLite gets a long lock timeout, since concurrent writers
    wait for each other rather than fail. With ``heartbeat_s``, a trial whose
    process died (killed, out of memory) is failed after ``2 * heartbeat_s``
    without a heartbeat and handed to ``on_stale``."""
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}
        _sqlite_wal(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_s,
            grace_period=2 * heartbeat_s if heartbeat_s else None,
            heartbeat_stale_trial_callback=on_stale if heartbeat_s else None,
        )


def _sqlite_wal(url: str) -> None:
    """Write-ahead logging for a SQLite file (a setting kept in the file): readers
    no longer block the writer, so workers sharing a study wait less, and a commit
    writes the log rather than rewriting pages. Local disks only, as SQLite says."""
    import sqlite3

    from sqlalchemy.engine import make_url

    path = make_url(url).database
    if not path or path == ":memory:":
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=60)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def make_pruner(enabled: bool, startup_trials: int, warmup_epochs: int) -> optuna.pruners.BasePruner:
    if not enabled:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs)


class TrialPruning(PyTorchLightningPruningCallback):
    """optuna-integration's pruning callback, picklable by reference.

    In one process it reports each epoch's ``monitor`` value and raises
    ``TrialPruned`` inside ``trainer.fit``. In a DDP rank (it arrives pickled in
    the ``FitSpec``), it reconnects to the study's RDB storage; rank 0 reports,
    the ranks agree to stop, and the launching process calls ``check_pruned()``
    after training, which raises ``TrialPruned`` there (optuna-integration's
    documented protocol for DDP; it needs RDB storage, not in-memory).
    """

    def __init__(self, trial: optuna.Trial, monitor: str, storage_url: str, pruner: tuple[bool, int, int]):
        super().__init__(trial, monitor)
        self._ref = {
            "storage_url": storage_url,
            "study_name": trial.study.study_name,
            "trial_id": trial._trial_id,
            "pruner": tuple(pruner),
            "monitor": monitor,
        }

    def __getstate__(self) -> dict[str, Any]:
        return dict(self._ref)

    def __setstate__(self, ref: dict[str, Any]) -> None:
        study = optuna.load_study(
            study_name=ref["study_name"], storage=make_storage(ref["storage_url"]), pruner=make_pruner(*ref["pruner"])
        )
        trial = optuna.trial.Trial(study, ref["trial_id"])
        self.__init__(trial, ref["monitor"], ref["storage_url"], ref["pruner"])

    def check_pruned(self) -> None:
        with warnings.catch_warnings():
            # re-reporting the ranks' values for steps already in storage only warns
            warnings.simplefilter("ignore")
            super().check_pruned()
