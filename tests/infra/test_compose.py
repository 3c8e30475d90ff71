"""infra/compose.yaml: the compose-spec schema, and what the schema cannot see.

The schema is the official compose-spec JSON schema as vendored by
check-jsonschema (``vendor.compose-spec``), so this runs offline.
"""

from __future__ import annotations

import json
import os
import re
from importlib import resources

import jsonschema
import pytest
import yaml

from ratchet.core.config import load_config
from ratchet.core.settings import Settings
from tests.conftest import ROOT

COMPOSE = ROOT / "infra" / "compose.yaml"
STACK = {"postgres", "minio", "lakefs", "mlflow", "prefect-server", "prefect-worker", "inference", "ratchet-relay"}
ONE_SHOT = {"minio-init"}  # runs to completion: no health check


def compose_schema() -> dict:
    text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    return json.loads(text)


def schema_errors(doc: dict) -> list[str]:
    schema = compose_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in cls(schema).iter_errors(doc)]


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with none of the variables set."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m[2], value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_passes_the_compose_spec_schema(compose):
    assert schema_errors(compose) == []


def test_the_schema_check_catches_mistakes(compose):
    """The check can fail: a misspelt key and a wrong type are reported."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["mlflow"]["healthchek"] = broken["services"]["mlflow"].pop("healthcheck")
    broken["services"]["postgres"]["restart"] = ["always"]
    errors = schema_errors(broken)
    assert any("healthchek" in e for e in errors), errors
    assert any(e.startswith("services/postgres/restart") for e in errors), errors


def test_the_whole_stack_is_there_with_health_checks(compose):
    services = compose["services"]
    assert STACK <= set(services)
    for name, svc in services.items():
        if name in ONE_SHOT:
            assert svc.get("restart") == "no"
            continue
        hc = svc.get("healthcheck")
        assert hc and hc.get("test") and not hc.get("disable"), f"{name} has no health check"


def test_dependencies_exist_and_wait_for_health(compose):
    services = compose["services"]
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no health check"
            elif cond["condition"] == "service_completed_successfully":
                assert dep in ONE_SHOT


def test_builds_and_mounts_name_files_that_exist(compose):
    base = COMPOSE.parent
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build:
            dockerfile = (base / build["context"] / build["dockerfile"]).resolve()
            assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("."):
                assert (base / src).exists(), f"{name}: mounted {src} missing"


def test_postgres_holds_a_database_for_each_server(compose):
    init = (COMPOSE.parent / "postgres" / "init-databases.sql").read_text()
    created = {line.split()[2].rstrip(";") for line in init.splitlines() if line.startswith("CREATE DATABASE")}
    created.add(compose["services"]["postgres"]["environment"]["POSTGRES_DB"])
    text = COMPOSE.read_text()
    for db in ("prefect", "mlflow", "lakefs", "ratchet"):
        assert db in created
        assert f"@postgres:5432/{db}" in text, f"nothing connects to database {db}"


def test_ratchet_services_get_a_complete_cluster_profile(compose, monkeypatch, tmp_path):
    """The environment compose gives ratchet's containers resolves every store of
    the cluster profile, and its config files select lakeFS."""
    env = compose["x-ratchet-env"]
    for name in ("prefect-worker", "inference", "ratchet-relay"):
        assert compose["services"][name]["environment"].items() >= env.items(), name
    for k in list(os.environ):
        if k.startswith(("RATCHET_", "MLFLOW_", "LAKEFS_")) or k == "PREFECT_API_URL":
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, interpolate(v))
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path))
    stores = Settings().stores(hide_passwords=False)
    assert stores["mlflow_tracking"] == "http://mlflow:5000"
    assert stores["ledger"] == "postgresql+psycopg://ratchet:ratchet@postgres:5432/ratchet"
    assert stores["optuna"] == stores["ledger"]
    assert stores["prefect_api"] == "http://prefect-server:4200/api"
    # no config file named: the profile alone selects the cluster overlay shipped in the package
    assert "RATCHET_CONFIG" not in env
    assert load_config().data.backend == "lakefs"
