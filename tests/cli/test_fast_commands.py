"""Commands at interactive speed: the read-only ones never load the model stack, and the
commands that run a flow share one Prefect server per home instead of a temporary one each."""

from __future__ import annotations

import json
import os
import sys

import httpx
import pytest
from typer.testing import CliRunner

from ratchet.core.settings import Settings
from ratchet.runtime.stack import read_server, server_file
from ratchet_cli import server
from ratchet_cli.main import app

runner = CliRunner()

# runs one command in a fresh interpreter, then names the heavy modules it imported
PROBE = """
import sys
from ratchet_cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    assert not e.code, e.code
heavy = ("torch", "lightning", "pytorch_lightning", "mlflow", "prefect", "optuna", "pandas", "sqlalchemy")
print("IMPORTED " + " ".join(m for m in heavy if m in sys.modules))
"""


def _imported(project, *args: str) -> set[str]:
    r = project.run(*args, cmd=(sys.executable, "-c", PROBE), RATCHET_PREFECT_SERVER="persistent")
    assert r.returncode == 0, r.stderr
    line = next(line for line in r.stdout.splitlines() if line.startswith("IMPORTED"))
    return set(line.split()[1:])


def test_read_only_commands_never_load_the_model_stack_or_prefect(project):
    init = runner.invoke(app, ["init", "--schema-from", "sample.csv", "--target", "target", "--json"])
    assert init.exit_code == 0, init.output
    status = _imported(project, "status", "--json")
    assert not status & {"torch", "lightning", "pytorch_lightning", "prefect", "optuna"}, status
    assert not status & {"pandas", "sqlalchemy"}, status  # a branch resolved and a marker read need neither
    assert "mlflow" not in status, status  # the aliases come from the tracking database itself
    history = _imported(project, "history", "--json")
    assert not history & {"torch", "lightning", "pytorch_lightning", "prefect", "mlflow"}, history
    assert not server_file(Settings(home=project.home)).exists()  # nothing started a server


def test_a_named_prefect_api_or_the_ephemeral_switch_starts_no_server(home, monkeypatch):
    settings = Settings(home=home).ensure()
    monkeypatch.setenv("RATCHET_PREFECT_SERVER", "ephemeral")
    assert server.connect(settings) is None  # Prefect's temporary server, as before
    monkeypatch.setenv("RATCHET_PREFECT_SERVER", "sometimes")
    with pytest.raises(ValueError, match="RATCHET_PREFECT_SERVER"):
        server.connect(settings)
    assert not server_file(settings).exists()


@pytest.mark.slow
def test_one_server_per_home_reused_replaced_when_dead_and_stopped_by_down(project):
    """Starts real Prefect servers (about 10 s each on two cores)."""
    init = runner.invoke(app, ["init", "--schema-from", "sample.csv", "--target", "target", "--json"])
    assert init.exit_code == 0, init.output
    env = {"RATCHET_PREFECT_SERVER": "persistent"}
    settings = Settings(home=project.home)
    try:
        first = project.run("ingest", "batch-1.csv", "--json", **env)
        assert first.returncode == 0, first.stderr
        record = read_server(settings)
        assert record and server.healthy(record["api_url"])
        # the flow run is in the server's history, which lives in the home
        runs = httpx.post(f"{record['api_url']}/flow_runs/filter", json={"limit": 10}, timeout=10).json()
        assert [r["state_type"] for r in runs] == ["COMPLETED"], runs
        assert (project.home / "prefect" / "prefect.db").exists()

        # a second command reuses it
        again = project.run("ingest", "batch-1.csv", "--json", **env)
        assert again.returncode == 0 and json.loads(again.stdout)["status"] == "duplicate", again.stderr
        assert read_server(settings)["pid"] == record["pid"]

        # a dead server is replaced, on the same port, with the history kept
        server.stop_group(record["pid"], grace=10)
        third = project.run("ingest", "batch-2.csv", "--json", **env)
        assert third.returncode == 0, third.stderr
        replaced = read_server(settings)
        assert replaced["pid"] != record["pid"] and replaced["api_url"] == record["api_url"]
        runs = httpx.post(f"{replaced['api_url']}/flow_runs/filter", json={"limit": 10}, timeout=10).json()
        assert len(runs) == 3, runs

        down = project.run("down", "--json", **env)
        assert json.loads(down.stdout)["stopped"][0] == "prefect-server", down.stderr  # then "warm" when it started
        assert read_server(settings) is None and not server.healthy(replaced["api_url"], timeout=1)
    finally:
        server.stop(settings)
    assert os.environ.get("RATCHET_PREFECT_SERVER") == "ephemeral"  # the suite's own switch


def test_status_shows_the_estimated_accuracy_beside_the_live_one(project):
    init = runner.invoke(app, ["init", "--schema-from", "sample.csv", "--target", "target", "--json"])
    assert init.exit_code == 0, init.output
    drift = {"checked_at": 1.0, "champion": "2", "detected": True, "kind": "estimated", "live_accuracy": None,
             "estimated_accuracy": 0.781, "estimated": {"rows": 400, "accuracy": 0.781, "accuracy_sd": 0.012,
                                                         "held_out_accuracy": 0.87, "detected": True}}
    (project.home / "drift.json").write_text(json.dumps(drift))
    r = project.run("status")
    assert r.returncode == 0, r.stderr
    assert "accuracy of v2: live (labels) -, estimated without labels 0.781 ± 0.012 on 400 rows" in r.stdout
    out = json.loads(project.run("status", "--json").stdout)["drift"]
    assert out["kind"] == "estimated" and out["estimated_accuracy"] == 0.781 and out["live_accuracy"] is None
