"""Training stage: data window, search, registration, summary."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ratchet import training
from ratchet.context import Context
from ratchet.dataset import TrainingData, training_data


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def load_training_data(ctx: Context, ref: str, window_batches: int | None = None) -> TrainingData:
    return training_data(ctx.repo, ref, ctx.cfg, window_batches)


@task(cache_policy=NO_CACHE, timeout_seconds=3600)
def tune_model(ctx: Context, data: TrainingData, trials: int | None, trigger: str) -> training.TrainedModel:
    return training.tune_on_commit(
        data, ctx.schema, ctx.cfg, ctx.settings, ctx.registry, trials=trials, trigger=trigger
    )


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=2)
def register_model(ctx: Context, trained: training.TrainedModel, data: TrainingData) -> str:
    """Idempotent: a retry after a crash finds the version by its run id."""
    return training.register_trained(trained, ctx.registry, data.train[ctx.schema.feature_names])


@task(cache_policy=NO_CACHE)
def publish_training_summary(ctx: Context, trained: training.TrainedModel, version: str) -> str:
    m = trained.metrics
    params = "\n".join(f"| {k} | {v} |" for k, v in trained.best_params.items())
    md = f"""# Model version {version} ({ctx.cfg.model_name})

| | |
|---|---|
| data commit | `{trained.data_commit}` |
| window | {trained.window_batches} batch(es) |
| MLflow run | `{trained.run_id}` |
| Optuna study | `{trained.study_name}`, best trial {trained.best_trial} of {trained.n_trials} ({trained.n_pruned} pruned) |
| test accuracy | {m.get('test_accuracy', float('nan')):.4f} |
| test F1 | {m.get('test_f1', float('nan')):.4f} |
| best val loss | {m.get('best_val_loss', float('nan')):.4f} |

## Best parameters
| parameter | value |
|---|---|
{params}
"""
    return str(create_markdown_artifact(md, key="training-summary", description=f"model version {version}"))
