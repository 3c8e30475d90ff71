"""Commands as a new user runs them (issue 25): the installed ``ratchet`` from a folder outside
the repository, a fresh home, an environment with no Prefect or ratchet variable but
``RATCHET_HOME`` (so the home's own Prefect server and warm process, not the test suite's
temporary servers), several commands in a row.

What counts, not how long (times: ``python benchmarks/cli.py``): no command starts Prefect's
temporary server, every flow run lands in the home server's history, the commands after the
warm process is ready are forwarded to it, a successful ingest writes nothing on stderr (its
line is on stdout; Prefect's log goes to ``<home>/logs/commands.log``), ``-v`` shows that log,
a missing file, a folder or an unknown format is one line and exit 1 with no flow run, a
batch that was read and failed its checks is exit 2 with its violations.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pytest

from ratchet.core.settings import Settings
from ratchet.runtime.stack import read_server
from ratchet_cli import warm
from tests.cli.conftest import RATCHET


def _clean_env(home) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RATCHET_"))}
    return {**env, "RATCHET_HOME": str(home)}


@pytest.fixture
def user(project):
    env = _clean_env(project.home)
    runs: list[subprocess.CompletedProcess] = []

    def ratchet(*args: str) -> subprocess.CompletedProcess:
        r = subprocess.run([str(RATCHET), *args], cwd=project.folder, env=env, capture_output=True, text=True,
                           timeout=300)
        runs.append(r)
        return r

    yield project, ratchet, runs
    down = ratchet("down", "--json")
    assert down.returncode == 0, down.stderr
    assert read_server(Settings(home=project.home)) is None


def _served(project) -> list[str]:
    log = project.home / "logs" / "warm.log"
    return [line for line in log.read_text().splitlines() if ": ratchet " in line] if log.exists() else []


def _wait_warm(project) -> None:
    settings = Settings(home=project.home)
    deadline = time.monotonic() + 240
    while True:
        log = project.home / "logs" / "warm.log"
        if log.exists() and " ready in " in log.read_text():
            return
        assert warm.read_record(settings), log.read_text() if log.exists() else "no warm process was started"
        assert time.monotonic() < deadline, "the warm process was not ready in 240 s"
        time.sleep(0.2)


def test_a_fresh_home_runs_its_commands_on_its_own_server_quietly_and_forwarded(user):
    """About 40 s on two cores: the first ingest starts the home's Prefect server (10-15 s), the
    warm process imports the model stack once (10 s); the forwarded commands take 1-2 s each."""
    project, ratchet, runs = user
    assert ratchet("init", "--schema-from", "sample.csv", "--target", "target").returncode == 0, runs[-1].stderr

    first = ratchet("ingest", "batch-1.csv")  # in its own process: starts the server and the warm process
    assert first.returncode == 0 and first.stdout.startswith("published 135 rows; main at "), first.stderr
    assert first.stderr == "", first.stderr
    _wait_warm(project)

    second = ratchet("ingest", "batch-2.csv")
    assert second.returncode == 0 and second.stdout.startswith("published 134 rows"), second.stderr
    again = ratchet("ingest", "batch-1.csv")  # the same rows: a no-op, said in one line
    assert again.returncode == 0 and again.stdout.startswith("duplicate: "), again.stderr
    assert second.stderr == again.stderr == ""
    loud = ratchet("-v", "ingest", "batch-2.csv")  # --verbose: Prefect's log of the run on stderr too
    assert loud.returncode == 0 and "Finished in state Completed()" in loud.stderr, loud.stderr
    assert [line.split(": ratchet ", 1)[1] for line in _served(project)] == [
        "ingest batch-2.csv", "ingest batch-1.csv", "-v ingest batch-2.csv"]

    # a rejected batch: read, failed its checks: exit 2, the violation named
    header, *rows = (project.folder / "batch-2.csv").read_text().splitlines()
    (project.folder / "bad.csv").write_text("\n".join([header, *(",".join(["oops", *r.split(",")[1:]]) for r in rows)]))
    rejected = ratchet("ingest", "bad.csv")
    assert rejected.returncode == 2 and f"'{header.split(',')[0]}'" in rejected.stderr, rejected.stderr

    # mistakes: one line, exit 1, before any flow run
    (project.folder / "a-folder.csv").mkdir()
    (project.folder / "notes.txt").write_text("x\n")
    for path, words in (("/nonexistent/batch.csv", "no such file"), ("a-folder.csv", "a folder"),
                        ("notes.txt", "unknown format")):
        r = ratchet("ingest", path)
        assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
        assert r.stderr.startswith(f"error: {path}: ") and words in r.stderr and r.stdout == "", r.stderr
    assert len(_served(project)) == 4  # the rejected batch was forwarded too; the mistakes never got that far

    for r in runs:
        assert "temporary server" not in r.stderr and "Error logging to API" not in r.stderr, r.stderr
    # every flow run in the history of the home's one server: 5 ingests
    api = read_server(Settings(home=project.home))["api_url"]
    flow_runs = httpx.post(f"{api}/flow_runs/filter", json={"sort": "START_TIME_ASC"}, timeout=30).json()
    assert [(r["parameters"]["path"], r["state_type"]) for r in flow_runs] == [
        ("batch-1.csv", "COMPLETED"), ("batch-2.csv", "COMPLETED"), ("batch-1.csv", "COMPLETED"),
        ("batch-2.csv", "COMPLETED"), ("bad.csv", "FAILED")]
    log = (project.home / "logs" / "commands.log").read_text()
    assert log.count("Finished in state Completed()") >= 4 and "Flow run" in log
    status = json.loads(ratchet("status", "--json").stdout)
    assert status["dashboard"] == api.removesuffix("api")
