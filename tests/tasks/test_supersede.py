"""A training run that starts cancels the runs queued behind it that it makes redundant."""

from __future__ import annotations

import datetime as dt

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Running, Scheduled

from ratchet_prefect.runs import supersede
from tasks.training import supersede_waiting_runs

TRIGGERED = {"skip_if_trained": True}


def _deployment(client, name: str):
    @flow(name=f"supersede-{name}")
    def queued():
        pass

    flow_id = client.create_flow(queued)
    return client.create_deployment(flow_id=flow_id, name=name)


def _run(client, deployment_id, trigger: str, start_in_s: float = -1, **params):
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=start_in_s)
    return client.create_flow_run_from_deployment(
        deployment_id, parameters={**TRIGGERED, "trigger": trigger, **params}, state=Scheduled(scheduled_time=when))


def _state(client, run) -> str:
    return client.read_flow_run(run.id).state.type.value


def test_a_starting_run_cancels_the_due_runs_it_makes_redundant_and_no_other():
    with get_client(sync_client=True) as client:
        dep = _deployment(client, "queue")
        other_dep = _deployment(client, "other")
        me = _run(client, dep, "data published")
        client.set_flow_run_state(me.id, Running(), force=True)
        same = _run(client, dep, "data published")
        drift = _run(client, dep, "drift detected")  # another label, the same training
        debouncing = _run(client, dep, "data published", start_in_s=300)  # reads the data when due
        other_ref = _run(client, dep, "manual", ref="v1")  # trains something else
        elsewhere = _run(client, other_dep, "data published")

        cancelled = supersede(client, str(me.id))

        assert sorted(cancelled) == sorted([same.name, drift.name])
        assert [_state(client, r) for r in (same, drift)] == ["CANCELLED", "CANCELLED"]
        assert [_state(client, r) for r in (me, debouncing, other_ref, elsewhere)] == [
            "RUNNING", "SCHEDULED", "SCHEDULED", "SCHEDULED"]
        assert "superseded by" in client.read_flow_run(same.id).state.message
        assert supersede(client, str(me.id)) == []  # nothing left to cancel


def test_a_run_outside_a_deployment_supersedes_nothing():
    @flow
    def plain():
        return supersede_waiting_runs()

    assert plain() == []
