"""The automations: a burst of published batches starts one training run, a rejection none."""

from __future__ import annotations

import time
from pathlib import Path

from deployments import build_deployments
from ratchet.core.config import load_config
from tests.conftest import CONFIG_FILES


def _runs(client, deployment_id) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def _emit(event: str, n: int) -> None:
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    for i in range(n):
        emit_event(
            event=event,
            resource={"prefect.resource.id": "ratchet.data.ratchet", "ratchet.commit": f"c{i}"},
            payload={"batch": i},
        )
    EventsWorker.drain_all()


def test_a_burst_of_publishes_starts_one_training_run_and_rejections_none():
    from prefect.client.orchestration import get_client

    cfg = load_config([Path(f) for f in CONFIG_FILES])
    train = next(d for d in build_deployments(cfg) if d.name == "on-data")
    deployment_id = train.apply()
    with get_client(sync_client=True) as client:
        _emit("ratchet.data.rejected", 3)
        _emit("ratchet.data.published", 10)
        deadline = time.monotonic() + 60
        while not _runs(client, deployment_id) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(cfg.loop.debounce_s + 3)  # any second run would have been created by now
        runs = _runs(client, deployment_id)
    assert len(runs) == 1, [r.name for r in runs]
    assert runs[0].parameters["trigger"] == "data published"
