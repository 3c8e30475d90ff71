"""Training stage: data window, search, registration, summary."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ratchet.monitoring.batches import live_concept_onset
from ratchet.runtime.context import Context
from ratchet.training import search, summary
from ratchet.training.window import TrainingData, training_data


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def load_training_data(ctx: Context, ref: str, window_batches: int | None = None) -> TrainingData:
    live_since = live_concept_onset(ctx.registry)  # the live monitor's onset, one source for since_drift
    return training_data(ctx.repo, ref, ctx.cfg, window_batches, live_since, key=ctx.schema.row_key)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def find_trained_model(ctx: Context, data: TrainingData) -> str | None:
    """The version already trained on this data window, config and code, if any."""
    return search.already_trained(data, ctx.cfg, ctx.registry)


@task(cache_policy=NO_CACHE, timeout_seconds=3600, retries=2, retry_delay_seconds=2)
def tune_model(ctx: Context, data: TrainingData, trials: int | None, trigger: str) -> search.TrainedModel:
    """A retry continues the study (same name for the same data, config and code) and
    resumes the failed trial from its last checkpoint; nothing is registered here."""
    return search.tune_on_commit(
        data, ctx.schema, ctx.cfg, ctx.settings, ctx.registry, trials=trials, trigger=trigger
    )


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=2)
def register_model(ctx: Context, trained: search.TrainedModel, data: TrainingData) -> str:
    """Idempotent: a retry after a crash finds the version by its run id."""
    return search.register_trained(trained, ctx.registry, data.train[ctx.schema.feature_names])


@task(cache_policy=NO_CACHE)
def publish_training_summary(ctx: Context, trained: search.TrainedModel, version: str) -> str:
    return str(
        create_markdown_artifact(
            summary.render(ctx.cfg.model_name, trained, version),
            key="training-summary",
            description=f"model version {version}",
        )
    )


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def supersede_waiting_runs() -> list[str]:
    """Cancel the runs of this run's deployment that wait for its slot and would train the same
    thing (the same parameters but the trigger's label): this run reads the data after them, so
    each would only find its data trained. Data that comes faster than training so queues at
    most the runs asked for during one training, not one per batch for ever. A run still in its
    debounce window (due later) is left: it reads the data when it is due. The names cancelled."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    with get_client(sync_client=True) as client:
        return _supersede(client, flow_run.id)


def _supersede(client, run_id: str | None) -> list[str]:
    """The waiting runs that ``run_id`` supersedes, cancelled (``supersede_waiting_runs``)."""
    import datetime as dt

    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    me = client.read_flow_run(run_id) if run_id else None
    if me is None or me.deployment_id is None:
        return []  # not a deployment's run (a command, a test): nothing queues behind it
    waiting = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        deployment_id=FlowRunFilterDeploymentId(any_=[me.deployment_id]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
        expected_start_time=FlowRunFilterExpectedStartTime(before_=dt.datetime.now(dt.UTC)),
    ))

    def same(params: dict) -> dict:
        return {k: v for k, v in params.items() if k != "trigger"}

    cancelled = []
    for run in waiting:
        if run.id == me.id or same(run.parameters) != same(me.parameters):
            continue
        result = client.set_flow_run_state(run.id, Cancelled(message=f"superseded by {me.name}: it trains newer data"))
        if result.state is not None and result.state.is_cancelled():
            cancelled.append(run.name)
    if cancelled:
        print(f"superseded {len(cancelled)} waiting run(s): {', '.join(cancelled)}")
    return cancelled
