"""The heartbeat automation on a real Prefect server: a runner's run that stops sending
heartbeats is marked Crashed; one that keeps sending them, or one not of the runner, is not."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from deployments.heartbeats import TAG, apply_heartbeat_automation
from ratchet.core.config import load_config
from tests.conftest import CONFIG_FILES

pytestmark = pytest.mark.slow  # about 20 s: the window, and Prefect's proactive evaluation after it

WINDOW_S = 10  # Prefect's least window for a proactive trigger (the config's least is 31 s)


def _heartbeat(run, tags: list[str]) -> None:
    """The event the flow engine sends for ``run`` (prefect.flow_engine._emit_flow_run_heartbeat)."""
    from prefect.events import emit_event
    from prefect.events.related import tags_as_related_resources

    emit_event(event="prefect.flow-run.heartbeat",
               resource={"prefect.resource.id": f"prefect.flow-run.{run.id}", "prefect.resource.name": run.name},
               related=tags_as_related_resources(set(tags)))


def test_a_runners_run_without_heartbeats_is_crashed_and_a_live_or_foreign_one_is_not():
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.events.worker import EventsWorker
    from prefect.states import Running

    @flow(name="heartbeat-probe")
    def probe() -> None: ...

    cfg = load_config([Path(f) for f in CONFIG_FILES])
    cfg = cfg.model_copy(update={"loop": cfg.loop.model_copy(update={"heartbeat_timeout_s": WINDOW_S})})
    automation = apply_heartbeat_automation(cfg)
    assert apply_heartbeat_automation(cfg).id == automation.id  # a restarted runner keeps it (and its windows)
    with get_client(sync_client=True) as client:
        dead, live, foreign = (client.create_flow_run(probe, tags=tags, state=Running())
                               for tags in ([TAG], [TAG], ["other"]))
        for run, tags in ((dead, [TAG]), (live, [TAG]), (foreign, ["other"])):
            _heartbeat(run, tags)
        EventsWorker.drain_all()
        deadline = time.monotonic() + WINDOW_S + 40
        while client.read_flow_run(dead.id).state.type.value != "CRASHED":
            assert time.monotonic() < deadline, "the silent run was not marked Crashed"
            _heartbeat(live, [TAG])
            EventsWorker.drain_all()
            time.sleep(2)
        state = client.read_flow_run(dead.id).state
        assert "no heartbeat" in state.message, state
        assert client.read_flow_run(live.id).state.type.value == "RUNNING"
        assert client.read_flow_run(foreign.id).state.type.value == "RUNNING"
