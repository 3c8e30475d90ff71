"""Schemathesis over the service's own OpenAPI document: generated good and bad requests to
every route never get a 5xx, and answers match the document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ratchet.serving import create_app

from .helpers import MemoryProvider, ratchet_predictor, serving_config

ADMIN_TOKEN, API_KEY = "s3cret", "k3y"
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-API-Key": API_KEY}
INT64 = {"minimum": -(2**63), "maximum": 2**63 - 1}
EXAMPLES = 12  # per operation and mode: ~200 requests, a few seconds
# (not negative_data_rejection: the service ignores unknown query parameters, as HTTP services do)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api(tmp_path, models):
    """Champion: a real ratchet model (fast path; float, int, bool, nullable and category inputs);
    challenger: a model with another schema, so canary requests also take the fallback path."""
    provider = MemoryProvider({**models, "7": ratchet_predictor("7")}, {"champion": "7", "challenger": "2"})
    cfg = serving_config(max_rows=20, max_body_bytes=20_000, profile_batch_rows=100_000, profile_flush_s=60.0)
    app = create_app(provider, cfg, tmp_path, admin_token=ADMIN_TOKEN, api_key=API_KEY, watch_interval_s=None)
    runtime = app.state.ratchet
    runtime.ensure_started()  # the document types /predict by the loaded champion's schema
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    runtime.stop()


def test_openapi_types_predict_by_the_champion(api):
    row = api.raw_schema["components"]["schemas"]["Row"]
    assert row["required"] == ["a", "n", "flag", "color", "size"]
    assert row["properties"]["size"]["type"] == "string" and row["additionalProperties"] is False
    assert {"type": "null"} in row["properties"]["n"]["anyOf"]  # nullable
    n = row["properties"]["n"]["anyOf"][0]
    assert (n["type"], n["minimum"], n["maximum"]) == ("integer", INT64["minimum"], INT64["maximum"])
    assert {"/predict", "/feedback", "/health", "/ready", "/metrics", "/stats", "/admin/traffic",
            "/admin/reload"} <= set(api.raw_schema["paths"])


def test_no_server_errors(api):
    """Every operation, good and bad inputs. (Through hypothesis directly: schemathesis' pytest
    plugin does not run under pytest 9.)"""
    failures: list[str] = []
    ran: dict[str, int] = {}
    for result in api.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            key = f"{mode.value} {operation.label}"
            try:
                _explore(operation.as_strategy(generation_mode=mode), key, ran, failures)
            except AssertionError:
                pass  # recorded; go on with the other operations
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, key  # no input to get wrong (GET /health)
    assert not failures, "\n".join(failures[:10])
    positive = {k for k in ran if k.startswith("positive")}
    assert len(positive) == len(api.raw_schema["paths"]) >= 8, ran
    assert ran["positive POST /predict"] == ran["negative POST /predict"] == EXAMPLES, ran


def _explore(strategy, key: str, ran: dict, failures: list) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
    )
    def run(case):
        ran[key] = ran.get(key, 0) + 1
        try:
            case.call_and_validate(headers=HEADERS, checks=CHECKS)
        except AssertionError as e:  # schemathesis' failures are AssertionErrors
            failures.append(f"{key}: {case.body!r:.200}: {e}")
            raise

    run()
