"""The wheel alone is the tool: built from the repository, installed into a bare folder, run
from a project folder outside the repository (the dependencies come from this venv, ratchet
from the wheel only)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

SOURCES = ("pyproject.toml", "README.md", "ratchet", "ratchet_cli", "tasks", "flows", "deployments")


def build_and_install(tmp: Path) -> Path:
    """``pip wheel`` of a copy of the sources (the build leaves nothing in the checkout),
    then ``pip install --target``: a folder that holds ratchet and nothing else."""
    src = tmp / "src"
    src.mkdir(parents=True)
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("ratchet-*.whl")
    site = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return site


def test_the_installed_wheel_runs_the_loop_from_any_folder(project, tmp_path):
    site = build_and_install(tmp_path / "wheel")
    assert (site / "ratchet" / "configs" / "ratchet.yaml").is_file()
    assert (site / "ratchet" / "configs" / "cluster.yaml").is_file()
    py = (sys.executable, "-m", "ratchet_cli")
    env = {"PYTHONPATH": str(site)}
    where = project.run(
        "-c", "import ratchet, ratchet_cli, flows, tasks; print(ratchet.__file__, ratchet_cli.__file__, flows.__file__)",
        cmd=(sys.executable,), **env,
    )
    assert where.returncode == 0, where.stderr
    assert all(Path(f).resolve().is_relative_to(site.resolve()) for f in where.stdout.split()), where.stdout
    # the project's own config, found as ./ratchet.yaml: a short training
    (project.folder / "ratchet.yaml").write_text("model_name: cancer\ntrain: {max_epochs: 5}\n")

    def ratchet(*args: str, code: int = 0) -> dict:
        result = project.run(*args, "--json", cmd=py, timeout=600, **env)
        assert result.returncode == code, (args, result.stdout, result.stderr[-3000:])
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        return json.loads(result.stdout)

    out = ratchet("init", "--schema-from", "sample.csv", "--target", "target")
    assert out["model"] == "cancer" and Path(out["config_files"][0]).is_relative_to(site)
    assert (project.home / "schema.yaml").is_file() and (project.home / "ratchet.yaml").is_file()
    commits = [ratchet("ingest", f"batch-{i}.csv")["commit"] for i in (1, 2)]
    assert len(set(commits)) == 2
    trained = ratchet("train", "--trials", "1")
    assert trained["model_version"] == "1" and trained["data_commit"] == commits[-1]
    promoted = ratchet("promote")
    assert promoted["action"] == "promote" and promoted["champion"] == "1"
    status = ratchet("status")
    assert status["model"] == "cancer" and status["champion"] == "1" and status["data"] == commits[-1]
    # and a mistake is still one line through the installed tool
    bad = project.run("--config", "nope.yaml", "status", cmd=py, **env)
    assert bad.returncode == 1 and bad.stderr.strip() == "error: config file not found: nope.yaml"
