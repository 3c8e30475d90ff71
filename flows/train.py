"""Train and tune on a data commit; register the best model as ``challenger``."""

from __future__ import annotations

from typing import Literal

from prefect import flow

from ratchet.core.events import MODEL_REGISTERED
from ratchet.runtime.options import RunOptions
from ratchet.training.result import TrainResult
from ratchet.training.summary import headline
from tasks.events import announce_model_event
from tasks.training import (
    find_trained_model,
    load_training_data,
    publish_training_summary,
    register_model,
    supersede_waiting_runs,
    tune_model,
)


@flow(name="train", log_prints=True)
def train_flow(
    ref: str | None = None,
    trials: int | None = None,
    window_batches: int | None = None,
    trigger: str = "manual",
    skip_if_trained: bool = False,
    options: RunOptions = RunOptions(),
    window: Literal["all", "last", "since_drift", "best"] | None = None,
) -> TrainResult:
    """Tune on the data window, register the best model as challenger, announce it.

    Args:
        ref: the data branch, tag or commit to train on (default: main)
        trials: Optuna trials (default: tune.trials)
        window_batches: at most this many of the newest batches (default: train.window_batches)
        trigger: why this run (kept with the version and in the ledger)
        skip_if_trained: do nothing when a version already learnt this data, config and code
        options: config files, overrides and home (left at the default by deployments)
        window: which batches: all, the last window_batches, since the latest drift onset, or
            the best candidate window on the newest batch (default: train.window)
    """
    ctx = options.merged({"train": {"window": window}} if window else None).context()
    supersede_waiting_runs()  # first: the data is read after the runs it supersedes were asked for
    data = load_training_data(ctx, ref or ctx.cfg.data.main_branch, window_batches)
    if skip_if_trained and (existing := find_trained_model(ctx, data)):
        print(f"v{existing} already learnt data {data.data_commit[:12]} with this config and code: nothing to do")
        return TrainResult(model_version=existing, data_commit=data.data_commit, skipped=True)
    trained = tune_model(ctx, data, trials, trigger)
    version = register_model(ctx, trained, data)
    publish_training_summary(ctx, trained, version)
    announce_model_event(
        MODEL_REGISTERED, ctx.cfg.model_name,
        {"version": version, "data_commit": trained.data_commit, "trigger": trigger},
    )
    print(f"registered {ctx.cfg.model_name} v{version} (challenger), {headline(trained.metrics)}")
    return TrainResult(
        model_version=version, data_commit=trained.data_commit, window_batches=trained.window_batches,
        run_id=trained.run_id, study=trained.study_name, best_params=trained.best_params, metrics=trained.metrics,
    )
