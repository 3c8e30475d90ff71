"""Hyperparameter search with Optuna: seeded TPE, pruning, RDB storage.

Each trial is a nested MLflow run under the caller's active run; the best
trial's fitted predictor is returned (not retrained) so the registered model
is exactly the one that earned the best score.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow
import optuna
import pandas as pd
from optuna_integration import PyTorchLightningPruningCallback

from ratchet.config import RatchetConfig, Schema, SearchParam
from ratchet.model.train import FitResult, fit

log = logging.getLogger(__name__)


def suggest(trial: optuna.Trial, space: dict[str, SearchParam]) -> dict[str, Any]:
    """Draw one configuration. Optuna's categorical choices must be scalars, so a
    list choice (e.g. hidden layers [64, 32]) is offered by its index."""
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p.type == "float":
            params[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
        elif p.type == "int":
            params[name] = trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
        elif any(isinstance(c, list | dict) for c in p.choices):
            params[name] = p.choices[trial.suggest_categorical(name, list(range(len(p.choices))))]
        else:
            params[name] = trial.suggest_categorical(name, p.choices)
    return params


def decode(params: dict[str, Any], space: dict[str, SearchParam]) -> dict[str, Any]:
    """Optuna's stored params back to model arguments (inverse of ``suggest``)."""
    out = dict(params)
    for name, p in space.items():
        if p.type == "categorical" and name in out and any(isinstance(c, list | dict) for c in p.choices):
            out[name] = p.choices[out[name]]
    return out


@dataclass
class TuneResult:
    study_name: str
    best_trial: int
    best_params: dict[str, Any]
    best_value: float
    best: FitResult
    n_trials: int
    n_pruned: int
    study: optuna.Study


def tune(
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    schema: Schema,
    cfg: RatchetConfig,
    *,
    storage: str,
    study_name: str,
    trials: int | None = None,
    progress: bool = True,
    on_trial: Callable[[int, dict[str, Any], FitResult], None] | None = None,
) -> TuneResult:
    """Minimise validation loss over ``cfg.tune.search_space``."""
    n_trials = trials if trials is not None else cfg.tune.trials
    sampler = optuna.samplers.TPESampler(seed=cfg.train.seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2) if cfg.tune.pruning else optuna.pruners.NopPruner()
    study = optuna.create_study(
        study_name=study_name, storage=storage, direction="minimize", sampler=sampler, pruner=pruner,
        load_if_exists=True,
    )
    fitted: dict[int, FitResult] = {}

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, cfg.tune.search_space)
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.log_params({"trial": trial.number, **params})
            callbacks = [PyTorchLightningPruningCallback(trial, monitor="val_loss")] if cfg.tune.pruning else []
            result = fit(train_df, val_df, schema, cfg.train, params, callbacks=callbacks, progress=False)
            for row in result.history:
                step = int(row["epoch"])
                mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=step)
            pruned = trial.should_prune()
            mlflow.set_tag("optuna.state", "pruned" if pruned else "complete")
            if pruned:
                raise optuna.TrialPruned()
        fitted[trial.number] = result
        if on_trial:
            on_trial(trial.number, params, result)
        return result.metrics["val_loss"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n_trials, timeout=cfg.tune.timeout_s, show_progress_bar=progress)
    # Only this process's trials have a fitted model in memory; others may
    # share the study from other workers.
    mine = [t for t in study.trials if t.number in fitted and t.state == optuna.trial.TrialState.COMPLETE]
    if not mine:
        raise RuntimeError(f"study {study_name!r}: no trial completed (all pruned or failed)")
    best = min(mine, key=lambda t: t.value)
    pruned = sum(1 for t in study.trials if t.state == optuna.trial.TrialState.PRUNED)
    return TuneResult(
        study_name=study_name,
        best_trial=best.number,
        best_params=decode(best.params, cfg.tune.search_space),
        best_value=float(best.value),
        best=fitted[best.number],
        n_trials=len(mine),
        n_pruned=pruned,
        study=study,
    )
