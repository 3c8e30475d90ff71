"""Training stage: data window, search, registration, summary."""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact

from ratchet.monitoring.batch_scores import live_concept_onset
from ratchet.runtime.context import Context
from ratchet.training import search, summary
from ratchet.training.lineage import champion_importance
from ratchet.training.window import TrainingData, training_data
from ratchet_prefect import runs
from ratchet_prefect.options import HOUR_S, REGISTRY_WRITE, STORE_READ, task


@task(**STORE_READ)
def load_training_data(ctx: Context, ref: str, window_batches: int | None = None) -> TrainingData:
    live_since = live_concept_onset(ctx.registry)  # the live monitor's onset, one source for since_drift
    return training_data(ctx.repo, ref, ctx.cfg, window_batches, live_since, ctx.schema,
                         champion_importance(ctx.registry))


@task(**STORE_READ)
def find_trained_model(ctx: Context, data: TrainingData) -> str | None:
    """The version already trained on this data window, config and code, if any."""
    return search.already_trained(data, ctx.cfg, ctx.registry)


@task(**STORE_READ, timeout_seconds=HOUR_S)
def tune_model(ctx: Context, data: TrainingData, trials: int | None, trigger: str) -> search.TrainedModel:
    """A retry continues the study (same name for the same data, config and code) and
    resumes the failed trial from its last checkpoint; nothing is registered here."""
    return search.tune_on_commit(
        data, ctx.schema, ctx.cfg, ctx.settings, ctx.registry, trials=trials, trigger=trigger
    )


@task(**REGISTRY_WRITE)
def register_model(ctx: Context, trained: search.TrainedModel, data: TrainingData) -> str:
    """Idempotent: a retry after a crash finds the version by its run id."""
    return search.register_trained(trained, ctx.registry, data.train[ctx.schema.feature_names])


@task
def publish_training_summary(ctx: Context, trained: search.TrainedModel, version: str) -> str:
    return str(
        create_markdown_artifact(
            summary.render(ctx.cfg.model_name, trained, version),
            key="training-summary",
            description=f"model version {version}",
        )
    )


@task(**STORE_READ)
def supersede_waiting_runs() -> list[str]:
    """The waiting runs of this run's deployment that it makes pointless, cancelled (their names)."""
    return runs.supersede_waiting_runs()
