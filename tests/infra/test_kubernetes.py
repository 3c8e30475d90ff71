"""Kubernetes manifests under infra/k8s/ against the Kubernetes API schemas
(kubernetes-validate ships them: offline), strict, so a misspelt field fails.
The GPU work pool's base job template is rendered as Prefect's Kubernetes
worker would and its Job checked the same way; the Helm values are checked
against what the prefect-worker chart reads."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from ratchet.config import load_config
from ratchet.settings import Settings
from tests.conftest import ROOT

K8S = ROOT / "infra" / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
# the oldest Kubernetes release still commonly run, and the newest the validator knows
VERSIONS = ("1.29.0", f"{kubernetes_validate.latest_version()}.0")
TEMPLATE = K8S / "gpu-base-job-template.json"
HELM_VALUES = ROOT / "infra" / "helm" / "prefect-worker-gpu.values.yaml"


def resources() -> list[tuple[str, dict]]:
    out = []
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in resources() if doc["kind"] == kind}


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def test_there_are_manifests():
    kinds = {doc["kind"] for _, doc in resources()}
    assert {"Deployment", "Service", "ConfigMap", "PersistentVolumeClaim"} <= kinds


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "doc"), resources(), ids=[n for n, _ in resources()])
def test_manifest_passes_the_kubernetes_schema(name, doc, version):
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_catches_mistakes():
    doc = copy.deepcopy(by_kind("Deployment")["ratchet-inference"])
    pod_spec(doc)["containers"][0]["readinessProbe"]["httpGet"]["prot"] = 8765
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSIONS[0], strict=True)
    doc = copy.deepcopy(by_kind("Deployment")["prefect-worker-gpu"])
    pod_spec(doc)["nodeSelector"]["nvidia.com/gpu.present"] = True  # YAML's unquoted true: not a label value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSIONS[0], strict=True)


def _non_root(spec: dict) -> None:
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]


def test_gpu_worker_lands_on_gpu_nodes_with_a_gpu():
    spec = pod_spec(by_kind("Deployment")["prefect-worker-gpu"])
    assert spec["nodeSelector"]
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    (worker,) = spec["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == worker["resources"]["limits"]["nvidia.com/gpu"]
    assert worker["command"][:3] == ["prefect", "worker", "start"]
    assert worker["livenessProbe"]["httpGet"]["path"] == "/health"
    _non_root(spec)


def test_inference_service_probes_health_and_readiness():
    dep = by_kind("Deployment")["ratchet-inference"]
    spec = pod_spec(dep)
    (c,) = spec["containers"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    _non_root(spec)
    svc = by_kind("Service")["ratchet-inference"]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    port_names = {p["name"] for p in c["ports"]}
    assert all(p["targetPort"] in port_names for p in svc["spec"]["ports"])


def test_pods_read_the_shared_env_and_claims_that_exist():
    configmaps, claims = by_kind("ConfigMap"), by_kind("PersistentVolumeClaim")
    for name, dep in by_kind("Deployment").items():
        spec = pod_spec(dep)
        for c in spec["containers"]:
            refs = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
            assert refs and all(r in configmaps for r in refs), name
        for v in spec.get("volumes", []):
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in claims, name


def test_the_cluster_env_resolves_the_cluster_profile(monkeypatch, tmp_path):
    """ConfigMap plus the documented secret keys give every store of the profile."""
    env = by_kind("ConfigMap")["ratchet-cluster-env"]["data"]
    for k in list(os.environ):
        if k.startswith(("RATCHET_", "MLFLOW_", "LAKEFS_")) or k == "PREFECT_API_URL":
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    base = (K8S / "base.yaml").read_text()
    secret_keys = set(re.findall(r"--from-literal=(\w+)=", base))
    assert {"RATCHET_POSTGRES_URL", "LAKEFS_ACCESS_KEY_ID", "LAKEFS_SECRET_ACCESS_KEY"} <= secret_keys
    monkeypatch.setenv("RATCHET_POSTGRES_URL", "postgresql://ratchet:pw@postgres:5432/ratchet")
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path))
    stores = Settings().stores()
    assert stores["profile"] == "cluster"
    assert stores["mlflow_tracking"].startswith("http://mlflow.")
    assert stores["prefect_api"].endswith(":4200/api")
    files = [ROOT / Path(p).relative_to("/app") for p in env["RATCHET_CONFIG"].split(":")]
    assert load_config(files).data.backend == "lakefs"


# ------------------------------------------------------- GPU work pool template
PLACEHOLDER = re.compile(r"^\{\{\s*(\w+)\s*\}\}$")
WORKER_VALUES = {  # what the Kubernetes worker fills in for a flow run
    "name": "ratchet-train-quick-fox",
    "command": ["prefect", "flow-run", "execute"],
    "env": [{"name": "PREFECT__FLOW_RUN_ID", "value": "0b7c5f7e-0000-4000-8000-000000000000"}],
    "labels": {"prefect.io/flow-run-name": "quick-fox"},
}


def render(node, values: dict):
    if isinstance(node, dict):
        return {k: render(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [render(v, values) for v in node]
    if isinstance(node, str) and (m := PLACEHOLDER.match(node)):
        return values[m[1]]
    return node


def placeholders(node) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(placeholders(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(placeholders(v) for v in node)) if node else set()
    if isinstance(node, str):
        return set(re.findall(r"\{\{\s*(\w+)\s*\}\}", node))
    return set()


@pytest.fixture(scope="module")
def template() -> dict:
    return json.loads(TEMPLATE.read_text())


def test_base_job_template_declares_every_placeholder(template):
    declared = set(template["variables"]["properties"])
    assert placeholders(template["job_configuration"]) <= declared


@pytest.mark.parametrize("version", VERSIONS)
def test_base_job_template_renders_a_valid_gpu_job(template, version):
    props = template["variables"]["properties"]
    values = {k: v["default"] for k, v in props.items() if "default" in v} | WORKER_VALUES
    job = render(template["job_configuration"]["job_manifest"], values)
    job["metadata"]["name"] = job["metadata"].pop("generateName") + "x1"
    kubernetes_validate.validate(job, version, strict=True)
    spec = job["spec"]["template"]["spec"]
    assert spec["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    (c,) = spec["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == props["gpu_count"]["default"] >= 1
    _non_root(spec)


def test_helm_values_for_the_prefect_worker_chart(template):
    values = yaml.safe_load(HELM_VALUES.read_text())
    worker = values["worker"]
    assert worker["apiConfig"] == "server" and worker["serverApiConfig"]["apiUrl"].endswith("/api")
    assert worker["config"]["type"] == "kubernetes" and worker["config"]["workPool"]
    assert worker["image"]["prefectTag"].endswith("-kubernetes")
    # the image's Prefect is the version the project pins
    from importlib.metadata import version

    assert worker["image"]["prefectTag"].startswith(version("prefect") + "-")
    # the template goes in with --set-file, named in the values file's instructions
    assert "--set-file worker.config.baseJobTemplate.configuration=infra/k8s/gpu-base-job-template.json" in (
        HELM_VALUES.read_text()
    )
