"""infra/serving: the Dockerfile and the KServe InferenceService parse and say what they should."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "serving" / "Dockerfile"
KSERVE = ROOT / "infra" / "serving" / "kserve-inferenceservice.yaml"


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "unterminated line continuation"
    return out


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    assert starts, "no FROM"
    return instructions[starts[-1]:]


def test_dockerfile_is_slim_non_root_with_a_healthcheck():
    ins = dockerfile_instructions(DOCKERFILE.read_text())
    known = {"FROM", "ARG", "ENV", "RUN", "COPY", "WORKDIR", "USER", "EXPOSE", "HEALTHCHECK", "CMD", "LABEL"}
    assert {op for op, _ in ins} <= known, {op for op, _ in ins} - known
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for op, a in ins if op == "ARG" and "=" in a}
    assert "slim" in args["PYTHON_IMAGE"]
    last = final_stage(ins)
    users = [a for op, a in last if op == "USER"]
    assert users, "the image must not run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    health = [a for op, a in last if op == "HEALTHCHECK"]
    assert health and "CMD" in health[0] and "/ready" in health[0]
    cmd = [a for op, a in last if op == "CMD"][-1]
    assert "ratchet.serving" in " ".join(shlex.split(cmd.replace("[", " ").replace("]", " ").replace(",", " ")))
    expose = [a for op, a in last if op == "EXPOSE"]
    assert expose == ["8080"]
    # nothing in the runtime stage is built or installed: the venv comes from the build stage
    assert not [a for op, a in last if op == "RUN" and "pip install" in a]


def test_kserve_inference_service_has_a_canary_and_probes():
    doc = yaml.safe_load(KSERVE.read_text())
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    predictor = doc["spec"]["predictor"]
    pct = predictor["canaryTrafficPercent"]
    assert isinstance(pct, int) and 0 < pct < 100
    assert predictor["securityContext"]["runAsNonRoot"] is True
    (container,) = predictor["containers"]
    assert [p["containerPort"] for p in container["ports"]] == [8080]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    env = {e["name"]: e for e in container["env"]}
    assert env["RATCHET_PORT"]["value"] == "8080"
    assert "secretKeyRef" in env["RATCHET_ADMIN_TOKEN"]["valueFrom"]  # never a literal token
    assert "RATCHET_MODEL_VERSION" in env


def test_the_parser_catches_a_root_image():
    ins = dockerfile_instructions("FROM python:3.11-slim\nRUN a \\\n  && b\nUSER root\nCMD [\"x\"]\n")
    assert ins[1] == ("RUN", "a  && b")
    assert final_stage(ins)[2] == ("USER", "root")
