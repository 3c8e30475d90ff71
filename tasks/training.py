"""Training stage: data window, search, registration, summary."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ratchet.runtime.context import Context
from ratchet.training import search as training
from ratchet.training.window import TrainingData, training_data


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def load_training_data(ctx: Context, ref: str, window_batches: int | None = None) -> TrainingData:
    return training_data(ctx.repo, ref, ctx.cfg, window_batches)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def find_trained_model(ctx: Context, data: TrainingData) -> str | None:
    """The version already trained on this data window, config and code, if any."""
    return training.already_trained(data, ctx.cfg, ctx.registry)


@task(cache_policy=NO_CACHE, timeout_seconds=3600, retries=2, retry_delay_seconds=2)
def tune_model(ctx: Context, data: TrainingData, trials: int | None, trigger: str) -> training.TrainedModel:
    """A retry continues the study (same name for the same data, config and code) and
    resumes the failed trial from its last checkpoint; nothing is registered here."""
    return training.tune_on_commit(
        data, ctx.schema, ctx.cfg, ctx.settings, ctx.registry, trials=trials, trigger=trigger
    )


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=2)
def register_model(ctx: Context, trained: training.TrainedModel, data: TrainingData) -> str:
    """Idempotent: a retry after a crash finds the version by its run id."""
    return training.register_trained(trained, ctx.registry, data.train[ctx.schema.feature_names])


@task(cache_policy=NO_CACHE)
def publish_training_summary(ctx: Context, trained: training.TrainedModel, version: str) -> str:
    return str(
        create_markdown_artifact(
            training_summary(ctx.cfg.model_name, trained, version),
            key="training-summary",
            description=f"model version {version}",
        )
    )


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def training_summary(model_name: str, trained: training.TrainedModel, version: str) -> str:
    m = trained.metrics
    params = "\n".join(f"| {k} | {v} |" for k, v in trained.best_params.items())
    trials = "\n".join(
        f"| {t['number']}{' (best)' if t['number'] == trained.best_trial else ''} | {t['state']} | {_fmt(t['value'])} "
        f"| {_fmt(t['epochs'])} | {_fmt(t['resume_of'])} | {', '.join(f'{k}={_fmt(v)}' for k, v in t['params'].items())} |"
        for t in trained.trials
    )
    figures = "\n".join(f"- `{name}`" for name in trained.figures)
    figures += "".join(f"\n- `{name}` not drawn: {why}" for name, why in trained.figures_skipped.items())
    resumed = f" Resumed trial(s) {trained.resumed} from their checkpoints." if trained.resumed else ""
    return f"""# Model version {version} ({model_name})

| | |
|---|---|
| data commit | `{trained.data_commit}` |
| window | {trained.window_batches} batch(es) |
| MLflow run | `{trained.run_id}` |
| Optuna study | `{trained.study_name}`, best trial {trained.best_trial}; {trained.n_finished} finished, {trained.n_pruned} pruned |
| test accuracy | {m.get('test_accuracy', float('nan')):.4f} |
| test F1 | {m.get('test_f1', float('nan')):.4f} |
| best val loss | {m.get('best_val_loss', float('nan')):.4f} |

## Best parameters
| parameter | value |
|---|---|
{params}

## Trials
| trial | state | val loss | epochs | resumes | parameters |
|---|---|---|---|---|---|
{trials}
{resumed}
## Figures (artifacts of the MLflow run)
{figures}
"""
