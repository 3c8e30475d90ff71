"""Training as the tasks see it: tune on a data commit, then register the best model.

Two steps so the orchestrator can retry them apart: a failed registration
does not re-run the search, and a model is never registered twice (the
version is looked up by its run id first). A failed search, retried, continues
its Optuna study (same name for the same data, config and code) and resumes the
failed trial from its last checkpoint under ``settings.checkpoints_dir``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from ratchet.core.config import RatchetConfig
from ratchet.core.metrics import metric_value, regression_metrics
from ratchet.core.performance import Calibration
from ratchet.core.prior_shift import class_counts
from ratchet.core.schema import Schema
from ratchet.core.settings import Settings
from ratchet.training.model.fit import FitResult, Predictor, fit
from ratchet.training.model.preprocess import encode_target, regression_target
from ratchet.training.model.tune import log_history, study_figures, trials_table, tune
from ratchet.training.registry import Registry, code_version
from ratchet.training.versions import VersionLineage
from ratchet.training.window import TrainingData


@dataclass
class TrainedModel:
    run_id: str
    predictor: Predictor
    data_commit: str
    batches: list[str]
    window_batches: int
    config_hash: str
    study_name: str
    best_trial: int
    best_params: dict[str, Any]
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    n_trials: int = 0
    n_pruned: int = 0
    n_finished: int = 0
    trials: list[dict[str, Any]] = field(default_factory=list)  # the study's trials, for the summary
    figures: list[str] = field(default_factory=list)  # artifact names in the MLflow run
    figures_skipped: dict[str, str] = field(default_factory=dict)
    resumed: list[int] = field(default_factory=list)
    window_rule: str = "all"
    holdout_batches: int | None = None  # the newest batches the gate scores (since the drift onset)
    window_candidates: list[dict] = field(default_factory=list)
    window_choice: str | None = None
    feature_importance: dict[str, float] = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)

    @property
    def lineage(self) -> VersionLineage:
        """What its registered version records."""
        return VersionLineage(
            data_commit=self.data_commit, window_batches=self.window_batches, window_rule=self.window_rule,
            holdout_batches=self.holdout_batches, code_version=code_version(), config_hash=self.config_hash,
            optuna_study=self.study_name, optuna_trial=self.best_trial, run_id=self.run_id, test_metrics=self.metrics,
            window_candidates=tuple(self.window_candidates), window_choice=self.window_choice,
            feature_importance=self.feature_importance, class_counts=self.class_counts,
        )


def study_name_for(data: TrainingData, cfg: RatchetConfig) -> str:
    key = json.dumps([data.data_commit, data.batches, cfg.digest(), code_version()])
    return f"ratchet-{data.data_commit[:10]}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def test_metrics(predictor: Predictor, data: TrainingData, schema: Schema) -> dict[str, float]:
    """On the held-out split: accuracy, f1, log loss for a classifier; RMSE, MAE, R² for regression."""
    if schema.target.is_regression:
        y = regression_target(data.test[schema.target.name])
        scores = regression_metrics(y, predictor.predict(data.test))
        return {f"test_{m}": v for m, v in scores.items()} | {"test_rows": float(len(y))}
    y = encode_target(data.test[schema.target.name], schema.target.classes)
    proba = predictor.predict_proba(data.test)
    classes = list(schema.target.classes)
    return {
        f"test_{m}": float(metric_value(m, y, proba, classes)) for m in ("accuracy", "f1", "log_loss")
    } | {"test_rows": float(len(y)), "test_positive_share": float(np.mean(y == len(classes) - 1))}


def refit(
    best: FitResult, params: dict[str, Any], train: pd.DataFrame, val: pd.DataFrame, schema: Schema, cfg: RatchetConfig
) -> tuple[FitResult, dict[str, float]]:
    """The chosen trial's settings trained again on the training and validation rows together
    (``train.refit``), for as many epochs as its early-stopped fit chose (its best epoch), with no
    early stopping and its last epoch's weights; and what to record of it (rows, epochs).

    Why: early stopping needs rows the network does not learn from, and ratchet holds out 15 %
    of the window for it; gradient boosting's baseline (and the user's) trains on them too. On
    randhie the refit turned -1.56 and -0.99 % against HistGradientBoosting into +0.16 and -0.34 %
    (benchmarks/real_data.py). The held-out (test) rows, which the gate and the test metrics
    score, stay held out. The validation rows are still handed to Lightning (it validates every
    epoch), but they are training rows now: nothing is chosen on them."""
    m = best.metrics
    epochs = int(m["best_epoch"]) + 1 if "best_epoch" in m else int(m.get("epochs") or cfg.train.max_epochs)
    tc = cfg.train.model_copy(update={"max_epochs": max(1, epochs), "early_stopping_patience": None,
                                      "restore_best": False})
    rows = pd.concat([train, val], ignore_index=True)
    out = fit(rows, val, schema, tc, dict(params), progress=False)
    return out, {"refit_rows": float(len(rows)), "refit_epochs": float(max(1, epochs))}


def calibrate(predictor: Predictor, data: TrainingData, *, val_learnt: bool = False) -> dict[str, float]:
    """Calibrate the classifier's top-label confidence (``ratchet.core.performance``) on every
    labelled row the network did not learn from: the validation and held-out test rows (the
    calibration changes no prediction, so the gate's use of the test rows is untouched). Rows
    are split by content, so identical rows land together, and on data with many duplicates one
    set alone misplaces an isotonic map by points (a census table: 2): the map (isotonic, Platt
    or none) is chosen by its error cross-fitted between the two sets (``calibration_ece``,
    beside the raw confidence's ``calibration_ece_raw``, scored per set alike)."""
    if predictor.task == "regression":
        return {}
    # a refit model learnt the validation rows (``val_learnt``): only the held-out rows are unseen
    parts = [predictor.top_label(df) for df in ((data.test,) if val_learnt else (data.val, data.test)) if len(df)]
    if not parts:
        return {}
    conf, hit = (np.concatenate(x) for x in zip(*parts, strict=True))
    cal = Calibration.select(parts) if len(parts) == 2 else Calibration.fit(conf, hit)
    predictor.calibration = cal
    out = {"calibration_rows": float(len(conf)), "calibration_ece_raw": cal.ece_raw}
    if len(parts) == 2:
        out["calibration_ece"] = cal.ece
    return out


def permutation_importance(predictor: Predictor, frame, schema: Schema, seed: int, repeats: int = 3) -> dict[str, float]:
    """Per feature: the relative rise of the held-out loss (log loss; regression: squared error)
    when that feature's values are shuffled among the rows. Measured at training and recorded with
    the version, so drift can be weighed by what the champion uses.

    Why not scikit-learn's ``permutation_importance``: it wants an estimator on a numeric matrix;
    the predictor takes the raw frame (a datetime column gives several model inputs), and shuffling
    the raw column keeps a feature's derived inputs together."""
    if len(frame) < 2:
        return {}
    rng = np.random.default_rng(seed)

    def loss(df) -> float:
        if schema.target.is_regression:
            y = regression_target(df[schema.target.name])
            return float(np.mean((np.asarray(predictor.predict(df)) - y) ** 2))
        y = encode_target(df[schema.target.name], schema.target.classes)
        return float(metric_value("log_loss", y, predictor.predict_proba(df), list(schema.target.classes)))

    base = loss(frame)
    out = {}
    for name in schema.feature_names:
        rises = []
        for _ in range(repeats):  # the mean of a few shuffles: one shuffle's rise is noisy on few rows
            shuffled = frame.copy()
            shuffled[name] = shuffled[name].to_numpy()[rng.permutation(len(frame))]
            rises.append((loss(shuffled) - base) / base if base > 0 else 0.0)
        out[name] = float(np.mean(rises))
    return out


def already_trained(data: TrainingData, cfg: RatchetConfig, registry: Registry) -> str | None:
    """The version already trained on exactly this data window, config and code, if any.

    Retraining on unchanged inputs would give the same (seeded) model again, so a
    queued run whose data has not moved since, or a drift alarm on data already
    learnt, costs one registry query instead of a search."""
    return registry.find_version(**_lineage(data, cfg).identity())


def _lineage(data: TrainingData, cfg: RatchetConfig, **more: Any) -> VersionLineage:
    """What a training on ``data`` records before it has a run, a study or a trial."""
    return VersionLineage(
        data_commit=data.data_commit, window_batches=len(data.batches), window_rule=data.rule,
        data_window=data.window, holdout_batches=data.holdout_batches, config_hash=cfg.digest(),
        code_version=code_version(), **more,
    )


def tune_on_commit(
    data: TrainingData,
    schema: Schema,
    cfg: RatchetConfig,
    settings: Settings,
    registry: Registry,
    *,
    trials: int | None = None,
    trigger: str = "manual",
    progress: bool = True,
) -> TrainedModel:
    """Search hyperparameters on ``data``; the parent MLflow run holds the lineage."""
    registry.activate()
    study = study_name_for(data, cfg)
    with mlflow.start_run(run_name=f"train-{data.data_commit[:10]}") as run:
        mlflow.set_tags(_lineage(data, cfg, optuna_study=study, trigger=trigger).run_tags())
        mlflow.log_params({"trials": trials or cfg.tune.trials, "rows_train": len(data.train)})
        mlflow.log_dict(cfg.model_dump(mode="json"), "config.json")
        mlflow.log_dict({"batches": data.batches}, "data_batches.json")
        result = tune(
            data.train, data.val, schema, cfg, storage=settings.optuna_url, study_name=study,
            trials=trials, progress=progress, checkpoint_root=settings.checkpoints_dir,
        )
        predictor, refitted = result.best.predictor, {}
        if cfg.train.refit:
            refit_result, refitted = refit(result.best, result.best_params, data.train, data.val, schema, cfg)
            predictor = refit_result.predictor
            mlflow.log_params({k: int(v) for k, v in refitted.items()})  # the version's run: refit, on how many rows
        metrics = {f"best_{k}": v for k, v in result.best.metrics.items()} | refitted
        metrics |= test_metrics(predictor, data, schema)
        metrics |= calibrate(predictor, data, val_learnt=bool(refitted))
        importance = permutation_importance(predictor, data.test, schema, cfg.train.seed)
        mlflow.log_dict(importance, "feature_importance.json")
        mlflow.log_params({f"best_{k}": v for k, v in result.best_params.items()})
        mlflow.log_metrics(metrics | {"trials_pruned": result.n_pruned, "kept_first_trial": float(result.kept_first)})
        log_history(result.best.history, prefix="best_")
        _log_curve(result.best.history)
        table = trials_table(result.study)
        mlflow.log_dict(table, "optuna_trials.json")
        figures, skipped = study_figures(result.study, seed=cfg.train.seed)
        _log_figures(figures)
        if skipped:
            mlflow.log_dict(skipped, "optuna_figures_skipped.json")
    return TrainedModel(
        run_id=run.info.run_id,
        predictor=predictor,
        data_commit=data.data_commit,
        batches=data.batches,
        window_batches=len(data.batches),
        window_rule=data.rule,
        holdout_batches=data.holdout_batches,
        window_candidates=data.candidates,
        window_choice=data.choice_rule,
        feature_importance=importance,
        class_counts={} if schema.target.is_regression else class_counts(data.train[schema.target.name],
                                                                             schema.target.classes),
        config_hash=cfg.digest(),
        study_name=study,
        best_trial=result.best_trial,
        best_params=result.best_params,
        metrics=metrics,
        history=result.best.history,
        n_trials=result.n_trials,
        n_pruned=result.n_pruned,
        n_finished=result.n_finished,
        trials=table,
        figures=["training_curve.png", *figures] if result.best.history else list(figures),
        figures_skipped=skipped,
        resumed=result.resumed,
    )


def register_trained(trained: TrainedModel, registry: Registry, example) -> str:
    """Register the model of ``trained.run_id`` once; alias it ``challenger``."""
    existing = registry.find_version(run_id=trained.run_id)
    if existing is None:
        registry.activate()
        with mlflow.start_run(run_id=trained.run_id):
            uri = registry.log_predictor(trained.predictor, example)
        existing = registry.register(
            uri,
            tags=trained.lineage.to_tags(),
        )
    registry.set_alias("challenger", existing)
    return existing


def _log_figures(figures: dict) -> None:
    import matplotlib.pyplot as plt

    for name, fig in figures.items():
        fig.tight_layout()
        mlflow.log_figure(fig, name)
        plt.close(fig)


def _log_curve(history: list[dict[str, float]]) -> None:
    """The best trial's training curve as a PNG in the run."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [r["epoch"] for r in history]
    for key in ("train_loss", "val_loss", "val_acc"):
        if key in history[0]:
            ax.plot(epochs, [r.get(key) for r in history], marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    mlflow.log_figure(fig, "training_curve.png")
    plt.close(fig)
