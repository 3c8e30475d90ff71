"""Kubernetes manifests under infra/k8s/ against the Kubernetes API schemas
(kubernetes-validate ships them: offline), strict, so a misspelt field fails.
The GPU work pools' base job templates are rendered as Prefect's Kubernetes
worker would and their Jobs checked the same way (the multi-node one with
Prefect's own templating); the Helm values are checked against what the
prefect-worker chart reads."""

from __future__ import annotations

import copy
import json
import os
import re

import kubernetes_validate
import pytest
import yaml

from ratchet.core.config import load_config
from ratchet.core.settings import Settings
from tests.conftest import ROOT

K8S = ROOT / "infra" / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
# the oldest Kubernetes release still commonly run, and the newest the validator knows
VERSIONS = ("1.29.0", f"{kubernetes_validate.latest_version()}.0")
TEMPLATE = K8S / "gpu-base-job-template.json"
HELM_VALUES = ROOT / "infra" / "helm" / "prefect-worker-gpu.values.yaml"
MULTINODE_TEMPLATE = K8S / "gpu-multinode-job-template.json"
MULTINODE_HELM_VALUES = ROOT / "infra" / "helm" / "prefect-worker-gpu-multinode.values.yaml"


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
    # no config file named: the profile alone selects the cluster overlay shipped in the package
    assert "RATCHET_CONFIG" not in env
    assert load_config().data.backend == "lakefs"


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


@pytest.mark.parametrize(
    ("values_file", "template_file"),
    [(HELM_VALUES, TEMPLATE), (MULTINODE_HELM_VALUES, MULTINODE_TEMPLATE)],
    ids=["gpu", "gpu-multinode"],
)
def test_helm_values_for_the_prefect_worker_chart(values_file, template_file):
    values = yaml.safe_load(values_file.read_text())
    worker = values["worker"]
    assert worker["apiConfig"] == "server" and worker["serverApiConfig"]["apiUrl"].endswith("/api")
    assert worker["config"]["type"] == "kubernetes" and worker["config"]["workPool"]
    assert worker["image"]["prefectTag"].endswith("-kubernetes")
    # the image's Prefect is the version the project pins
    from importlib.metadata import version

    assert worker["image"]["prefectTag"].startswith(version("prefect") + "-")
    # the template goes in with --set-file, named in the values file's instructions
    named = f"--set-file worker.config.baseJobTemplate.configuration={template_file.relative_to(ROOT)}"
    assert named in values_file.read_text()


# ------------------------------------------------- multi-node work pool template
@pytest.fixture(scope="module")
def multinode() -> dict:
    return json.loads(MULTINODE_TEMPLATE.read_text())


def render_with_prefect(template: dict, **values) -> dict:
    """The Job the Kubernetes worker submits: the pool's defaults and the worker's
    values through Prefect's own templating (a placeholder alone keeps its type, one
    inside text becomes text), then the flow run's ``env`` put in front of the
    container's own list, as prefect-kubernetes' ``_populate_env_in_manifest`` does."""
    from prefect.utilities.templating import apply_values

    props = template["variables"]["properties"]
    worker = {**WORKER_VALUES, "env": {"PREFECT__FLOW_RUN_ID": WORKER_VALUES["env"][0]["value"]},
              "command": "prefect flow-run execute"}
    merged = {k: v["default"] for k, v in props.items() if "default" in v} | worker | values
    job = apply_values(copy.deepcopy(template["job_configuration"]["job_manifest"]), merged)
    job["metadata"]["name"] = job["metadata"].pop("generateName") + "x1"
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": k, "value": v} for k, v in merged["env"].items()] + container["env"]
    container["args"] = container["args"].split()
    return job


def test_multinode_template_declares_every_placeholder(multinode):
    assert placeholders(multinode["job_configuration"]) <= set(multinode["variables"]["properties"])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("num_nodes", [None, 3])
def test_multinode_template_renders_an_indexed_job_of_one_pod_per_node(multinode, version, num_nodes):
    props = multinode["variables"]["properties"]
    job = render_with_prefect(multinode, **({"num_nodes": num_nodes} if num_nodes else {}))
    kubernetes_validate.validate(job, version, strict=True)
    n = num_nodes or props["num_nodes"]["default"]
    assert props["num_nodes"]["minimum"] == 1 and props["num_nodes"]["default"] >= 2
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == n
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    _non_root(pod)
    (c,) = pod["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == props["gpu_count"]["default"] >= 1
    # every pod starts the node-rank aware entry point, which runs the flow run on node 0 only
    assert c["command"] == ["ratchet-node", f"--num-nodes={n}", "--"]
    assert c["args"] == ["prefect", "flow-run", "execute"]
    env = {e["name"]: e for e in c["env"]}
    assert env["PREFECT__FLOW_RUN_ID"]["value"]  # the worker's variables reach every pod
    assert env["NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    assert env["JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"
    names = [e["name"] for e in c["env"]]
    assert names.index("JOB_NAME") < names.index("MASTER_ADDR")  # $(JOB_NAME) expands only from earlier entries
    assert env["MASTER_ADDR"]["value"] == f"$(JOB_NAME)-0.{pod['subdomain']}"


def test_multinode_pods_find_each_other_through_the_headless_service(multinode):
    from ratchet.training.model.distributed import node

    job = render_with_prefect(multinode)
    pod = job["spec"]["template"]
    service = by_kind("Service")[pod["spec"]["subdomain"]]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["metadata"]["namespace"] == job["metadata"]["namespace"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (c,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    coord = int(env[node.COORD_PORT_ENV])
    assert coord == node.DEFAULT_COORD_PORT
    assert [p["port"] for p in service["spec"]["ports"]] == [coord]
    assert {"name": "coord", "containerPort": coord} in c["ports"]
    for var in (node.JOIN_TIMEOUT_ENV, node.HEARTBEAT_TIMEOUT_ENV):
        assert float(env[var]) > 0


def test_the_entry_point_of_the_pods_is_installed_with_ratchet():
    import tomllib

    from ratchet.training.model.distributed.node import dispatch

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["ratchet-node"].partition(":")
    assert (module, func) == (dispatch.__module__, dispatch.__name__)
    assert "ratchet-node" in (ROOT / "infra" / "docker" / "train.Dockerfile").read_text()
