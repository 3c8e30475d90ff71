"""Runs of a deployment that a newer run makes pointless: cancelled before they start."""

from __future__ import annotations


def supersede_waiting_runs() -> list[str]:
    """Cancel the runs of this flow run's deployment that wait for its slot and would train the
    same thing (the same parameters but the trigger's label): this run reads the data after them, so
    each would only find its data trained. Data that comes faster than training so queues at
    most the runs asked for during one training, not one per batch for ever. A run still in its
    debounce window (due later) is left: it reads the data when it is due. The names cancelled."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    with get_client(sync_client=True) as client:
        return supersede(client, flow_run.id)


def supersede(client, run_id: str | None) -> list[str]:
    """The waiting runs that ``run_id`` supersedes, cancelled."""
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
