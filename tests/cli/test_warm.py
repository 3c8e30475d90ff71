"""Warm commands (ratchet_cli/warm.py): a flow command runs in a fork of the home's warm
process, against the same Prefect server, with the caller's folder, output and exit code;
a changed project file, a dead warm process or none at all means the command runs itself."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

import ratchet_cli.common as common_module
from ratchet.core.settings import Settings
from ratchet_cli import warm

PRELOAD = "prefect,pandas,ratchet_cli.main,ratchet.data.profiling,flows.ingest"  # not torch: a faster start


@pytest.fixture
def warm_home(project, prefect_server, monkeypatch):
    """An initialised project whose commands talk to the test session's Prefect server, and
    its warm process, ready."""
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    monkeypatch.setenv("PREFECT_API_URL", api)
    monkeypatch.setenv("RATCHET_WARM_PRELOAD", PRELOAD)
    init = project.run("init", "--schema-from", "sample.csv", "--target", "target", "--json")
    assert init.returncode == 0, init.stderr
    settings = Settings(home=project.home).ensure()
    warm.ensure_started(settings)
    record = warm.read_record(settings)
    assert record is not None
    deadline = time.monotonic() + 120
    while not Path(record["socket"]).exists():
        assert warm.read_record(settings), (project.home / "logs" / "warm.log").read_text()
        assert time.monotonic() < deadline, "the warm process never listened"
        time.sleep(0.2)
    yield project, settings, api
    warm.stop(settings)


def _served(project) -> list[str]:
    return [line for line in (project.home / "logs" / "warm.log").read_text().splitlines() if ": ratchet " in line]


def test_a_warm_ingest_runs_in_a_fork_with_the_callers_folder_output_and_exit_code(warm_home):
    project, settings, api = warm_home
    ok = project.run("ingest", "batch-1.csv", "--json")  # a path relative to the caller's folder
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert result["status"] == "published" and result["rows"] == 135
    assert len(_served(project)) == 1 and "ingest batch-1.csv --json" in _served(project)[0]
    runs = httpx.post(f"{api}/flow_runs/filter", json={"sort": "START_TIME_DESC", "limit": 20}).json()
    assert any(r["state_type"] == "COMPLETED" and r["parameters"].get("path") == "batch-1.csv" for r in runs)

    # a rejected batch: exit code 2 and its one-line reason on the caller's stderr
    bad = project.folder / "bad.csv"
    text = (project.folder / "batch-2.csv").read_text().splitlines()
    header = text[0].split(",")
    rows = [",".join(["oops"] + r.split(",")[1:]) for r in text[1:]]
    bad.write_text("\n".join([",".join(header), *rows]) + "\n")
    rejected = project.run("ingest", "bad.csv", "--json")
    assert rejected.returncode == 2 and json.loads(rejected.stdout)["status"] == "rejected", rejected.stderr
    assert f"'{header[0]}'" in rejected.stderr and len(_served(project)) == 2

    # the same command with the warm process disabled gives the same answer, in its own process
    again = project.run("ingest", "batch-1.csv", "--json", RATCHET_WARM="0")
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "duplicate", again.stderr
    assert len(_served(project)) == 2


@pytest.mark.slow
def test_changed_project_code_or_a_dead_warm_process_means_the_command_runs_itself(warm_home):
    """Slow: three commands that each run in a fresh interpreter."""
    project, settings, _ = warm_home
    # a project file edited after the warm process imported it: refused, and the process goes
    edited = Path(common_module.__file__)  # its mtime only
    os.utime(edited)
    first = project.run("ingest", "batch-1.csv", "--json")
    assert first.returncode == 0 and json.loads(first.stdout)["status"] == "published", first.stderr
    log = (project.home / "logs" / "warm.log").read_text()
    assert "project code changed on disk" in log and not _served(project)
    deadline = time.monotonic() + 30
    while warm.read_record(settings) is not None:
        assert time.monotonic() < deadline, "the stale warm process did not exit"
        time.sleep(0.2)

    # a warm process killed outright: its record is stale, the command runs itself
    warm.ensure_started(settings)
    record = warm.read_record(settings)
    os.kill(record["pid"], signal.SIGKILL)
    time.sleep(0.5)
    second = project.run("ingest", "batch-2.csv", "--json")
    assert second.returncode == 0 and json.loads(second.stdout)["status"] == "published", second.stderr
    assert warm.read_record(settings) is None and not _served(project)
