"""Every deployment can be run from the UI: its parameters are typed and described in its
schema, and the Prefect server accepts a flow run of it (the server checks the parameters
against that schema). Real Prefect (test harness); the runs stay scheduled (no worker)."""

from __future__ import annotations

from pathlib import Path

from deployments import build_deployments
from ratchet.core.config import load_config
from tests.conftest import CONFIG_FILES

REQUIRED = {"ingest": {"path": "batch.csv"}, "notify": {"body": "{}"}}  # what the UI's form asks for


def test_a_flow_run_of_every_deployment_is_accepted_with_typed_described_parameters():
    from prefect.client.orchestration import get_client

    cfg = load_config([Path(f) for f in CONFIG_FILES])
    deployments = build_deployments(cfg)
    schemas = {}
    with get_client(sync_client=True) as client:
        for d in deployments:
            deployment_id = d.apply()
            schema = client.read_deployment(deployment_id).parameter_openapi_schema
            props = schemas[d.flow_name] = schema["properties"]
            assert "options" in props, d.name
            untyped = [k for k, v in props.items() if not ({"type", "anyOf", "allOf", "$ref", "enum"} & set(v))]
            assert not untyped, f"{d.flow_name}/{d.name}: untyped parameters {untyped}"
            run = client.create_flow_run_from_deployment(deployment_id, parameters=REQUIRED.get(d.flow_name, {}))
            assert run.state.is_scheduled(), (d.flow_name, d.name, run.state)
            client.delete_flow_run(run.id)
        score = client.read_deployment_by_name("score/manual").parameter_openapi_schema["properties"]
    described = {k for k, v in score.items() if v.get("description")}
    assert {"path", "ref", "version", "out", "chunk_rows"} <= described, score
    undescribed = {flow: [k for k, v in props.items() if not v.get("description")] for flow, props in schemas.items()}
    assert not any(undescribed.values()), undescribed
    # a choice is an enum: the form shows a select
    window = schemas["train"]["window"]
    assert [s["enum"] for s in window["anyOf"] if "enum" in s] == [["all", "last", "since_drift", "best"]], window
