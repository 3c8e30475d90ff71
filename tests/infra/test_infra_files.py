"""Every YAML under infra/ parses; the lakeFS action and the CI template hold
what they promise (the CI template against the GitHub workflow schema vendored
by check-jsonschema, offline)."""

from __future__ import annotations

import json
import re
from importlib import resources

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT

INFRA = ROOT / "infra"
# Helm chart templates are Go templates, not YAML until rendered
YAML_FILES = sorted(p for p in INFRA.rglob("*.y*ml") if "templates" not in p.parts)
ACTION = INFRA / "lakefs" / "_lakefs_actions" / "post-merge-relay.yaml"
WORKFLOW = INFRA / "ci" / "github-actions.yaml"


@pytest.mark.parametrize("path", YAML_FILES, ids=[str(p.relative_to(ROOT)) for p in YAML_FILES])
def test_yaml_parses(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


# ----------------------------------------------------------------- lakeFS action
GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def load_with_on(path) -> dict:
    """PyYAML reads the key `on` as True (YAML 1.1); lakeFS and GitHub read it as "on"."""
    return {("on" if k is True else k): v for k, v in yaml.safe_load(path.read_text()).items()}


def test_lakefs_action_relays_merges_into_main():
    action = load_with_on(ACTION)
    assert set(action) <= {"name", "description", "on", "hooks"}
    assert action["name"]
    assert action["on"] == {"post-merge": {"branches": ["main"]}}
    (hook,) = action["hooks"]
    assert hook["type"] == "webhook" and re.fullmatch(r"\w+", hook["id"])
    props = hook["properties"]
    assert set(props) <= {"url", "timeout", "query_params", "headers"}
    assert re.match(r"^https?://[\w.-]+(:\d+)?/", props["url"])
    assert "{{" not in props["url"], "lakeFS does not expand variables in a webhook url"
    assert GO_DURATION.match(props["timeout"])
    # lakeFS hands actions only the variables with its LAKEFSACTION_ prefix
    env_refs = re.findall(r"\{\{\s*ENV\.(\w+)\s*\}\}", json.dumps(props))
    assert env_refs and all(v.startswith("LAKEFSACTION_") for v in env_refs)


def test_lakefs_action_reaches_the_relay_of_the_stack():
    url = yaml.safe_load(ACTION.read_text())["hooks"][0]["properties"]["url"]
    host, port = re.match(r"^https?://([\w.-]+):(\d+)/", url).groups()
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text())
    relay = compose["services"][host]
    assert relay["command"][:2] == ["ratchet", "relay"] and port in relay["command"]
    token_var = re.search(r"ENV\.(\w+)", json.dumps(yaml.safe_load(ACTION.read_text())))[1]
    assert token_var in compose["services"]["lakefs"]["environment"]


# ----------------------------------------------------------------- CI template
def workflow_schema() -> dict:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("github-workflows.json").read_text())


def test_ci_template_passes_the_github_workflow_schema():
    schema = workflow_schema()
    cls = jsonschema.validators.validator_for(schema)
    doc = load_with_on(WORKFLOW)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in cls(schema).iter_errors(doc)]
    assert errors == []
    broken = {**doc, "jobs": {**doc["jobs"], "test": {**doc["jobs"]["test"], "runs_on": "ubuntu-latest"}}}
    assert any(True for _ in cls(schema).iter_errors(broken)), "the schema check must be able to fail"


def test_ci_template_tests_on_push_and_gates_promotion():
    wf = load_with_on(WORKFLOW)
    on = wf["on"]
    assert {"push", "pull_request", "schedule", "repository_dispatch"} <= set(on)
    jobs = wf["jobs"]
    assert "make test" in json.dumps(jobs["test"]["steps"])
    assert "postgres" in jobs["test"]["services"]  # the postgres-marked tests run in CI too
    for stage in ("train", "evaluate", "promote"):
        assert "prefect deployment run" in json.dumps(jobs[stage]["steps"]), stage
    assert jobs["evaluate"]["needs"] == "train" and jobs["promote"]["needs"] == "evaluate"
    assert jobs["promote"]["environment"] == "production"  # reviewers approve before promotion
    assert "schedule" in jobs["train"]["if"] and "repository_dispatch" in jobs["train"]["if"]
