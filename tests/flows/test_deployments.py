"""Deployments: prefect.yaml and deployments/ agree, and `prefect deploy --all` registers them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from deployments import build_deployments
from ratchet.core.config import load_config
from tests.conftest import CONFIG_FILES, ROOT

ENTRY_FLOW = {
    "flows/train.py:train_flow": "train",
    "flows/release.py:release_flow": "release",
    "flows/monitor.py:monitor_flow": "monitor",
    "flows/ingest.py:ingest_flow": "ingest",
    "flows/promote.py:evaluate_flow": "evaluate",
    "flows/promote.py:promote_flow": "promote",
    "flows/promote.py:rollback_flow": "rollback",
    "flows/score.py:score_flow": "score",
    "flows/gc.py:gc_flow": "gc",
    "flows/notify.py:notify_flow": "notify",
}


def _project() -> dict:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())


def test_prefect_yaml_mirrors_the_code_deployments():
    cfg = load_config([Path(f) for f in CONFIG_FILES[:1]])
    in_code = {(d.flow_name, d.name): d for d in build_deployments(cfg)}
    local = [d for d in _project()["deployments"] if d["work_pool"]["name"] == cfg.loop.work_pool]
    in_yaml = {(ENTRY_FLOW[d["entrypoint"]], d["name"]): d for d in local}
    assert set(in_yaml) == set(in_code)
    for key, d in in_yaml.items():
        expected = sorted(sorted(t.expect) for t in in_code[key].triggers or [])
        assert sorted(sorted(t["expect"]) for t in d.get("triggers", [])) == expected, key
    train = in_yaml[("train", "on-data")]
    data_trigger = next(t for t in train["triggers"] if "ratchet.data.published" in t["expect"])
    assert data_trigger["within"] == cfg.loop.debounce_s and train["concurrency_limit"] == 1


def test_kubernetes_job_variables_exist_in_the_base_job_template():
    template = json.loads((ROOT / "deployments" / "k8s-base-job-template.json").read_text())
    known = set(template["variables"]["properties"])
    cluster = [d for d in _project()["deployments"] if d["work_pool"]["name"] == "ratchet-k8s"]
    assert cluster, "no deployment targets the kubernetes pool"
    for d in cluster:
        unknown = set(d["work_pool"].get("job_variables", {})) - known
        assert not unknown, f"{d['name']}: job variables {unknown} are not in the base job template"
    gpu_jobs = [d for d in cluster if d["work_pool"]["job_variables"].get("gpu")]
    assert gpu_jobs and "nvidia.com/gpu" in json.dumps(template["job_configuration"])


MULTINODE_TEMPLATE = ROOT / "infra" / "k8s" / "gpu-multinode-job-template.json"


def test_multinode_job_variables_exist_in_its_base_job_template():
    """Job variables only take effect through placeholders of the pool's template."""
    template = json.loads(MULTINODE_TEMPLATE.read_text())
    known = set(template["variables"]["properties"])
    multinode = [d for d in _project()["deployments"] if d["work_pool"]["name"] == "ratchet-gpu-multinode"]
    assert multinode and {ENTRY_FLOW[d["entrypoint"]] for d in multinode} == {"train"}
    for d in multinode:
        variables = d["work_pool"]["job_variables"]
        assert set(variables) <= known, f"{d['name']}: job variables {set(variables) - known} are not in the template"
        assert variables["num_nodes"] >= 2


def test_prefect_deploy_all_registers_every_deployment(tmp_path):
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "RATCHET_REPO_DIR": str(ROOT),
           "RATCHET_TRAIN_IMAGE": "ratchet-train:test", "PREFECT_CLI_PROMPT": "false"}
    prefect = str(Path(sys.executable).parent / "prefect")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([prefect, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert run("work-pool", "create", "ratchet-process", "--type", "process").returncode == 0
    r = run("work-pool", "create", "ratchet-k8s", "--type", "kubernetes",
            "--base-job-template", str(ROOT / "deployments" / "k8s-base-job-template.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    # the server checks the multi-node template as a kubernetes pool's base job template
    r = run("work-pool", "create", "ratchet-gpu-multinode", "--type", "kubernetes",
            "--base-job-template", str(MULTINODE_TEMPLATE))
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("--no-prompt", "deploy", "--all")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = run("deployment", "ls")
    listed = r.stdout
    for d in _project()["deployments"]:
        assert f"{ENTRY_FLOW[d['entrypoint']]}/{d['name']}" in listed


def test_the_runner_is_given_every_deployment_as_built_with_its_flow():
    """``deployments.serve`` hands each deployment to the runner through ``add_flow`` (so its runs
    fork warm): the same deployment, rebuilt from ``served``'s arguments, with the flow it was made of."""
    from prefect.deployments.runner import RunnerDeployment

    from deployments import deployment_flows
    from deployments.serve import served

    cfg = load_config([Path(f) for f in CONFIG_FILES[:1]])
    flows = deployment_flows()
    built = build_deployments(cfg)
    assert {d.flow_name for d in built} == set(flows)
    for d in built:
        again = RunnerDeployment.from_flow(flows[d.flow_name], **served(d))
        for field in ("name", "flow_name", "entrypoint", "parameters", "tags", "concurrency_limit", "description"):
            assert getattr(again, field) == getattr(d, field), (d.name, field)
        assert again.concurrency_options == d.concurrency_options, d.name
        assert [t.model_dump() for t in again.triggers] == [t.model_dump() for t in d.triggers], d.name
        assert [s.schedule for s in again.schedules or []] == [s.schedule for s in d.schedules or []], d.name
