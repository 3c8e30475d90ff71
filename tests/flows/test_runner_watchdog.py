"""A dead runner is replaced: `ratchet up`, a batch, and the runner itself SIGKILLed mid-training.

With no command after the kill: the supervisor kills the flow run the runner left behind and
starts a new runner; the heartbeat automation marks the silent run Crashed; the crash-recovery
trigger runs training again, which registers exactly one version; the new runner serves the
next batch's training; `ratchet down` leaves no process behind.

Slow (several minutes): `pytest -m slow tests/flows/test_runner_watchdog.py`.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import httpx
import pytest

from tests.flows.stack import ROOT, Stack, demo_home, flow_run_process, gone, runner_record, train_runs

pytestmark = pytest.mark.slow


def _heartbeats(api: str, run_id: str) -> list[float]:
    body = {"filter": {"event": {"name": ["prefect.flow-run.heartbeat"]},
                       "resource": {"id": [f"prefect.flow-run.{run_id}"]},
                       "occurred": {"since": "2000-01-01T00:00:00Z"}}, "limit": 50}
    events = httpx.post(f"{api}/events/filter", json=body, timeout=10).json()["events"]
    return sorted(datetime.fromisoformat(e["occurred"].replace("Z", "+00:00")).timestamp() for e in events)


def _versions(stack: Stack) -> str:
    r = subprocess.run(
        [sys.executable, "-c", "from ratchet.runtime.context import load_context; c = load_context(); "
         "print(len(c.registry.client.search_model_versions(f\"name = '{c.cfg.model_name}'\")))"],
        env=stack.env, cwd=ROOT, capture_output=True, text=True,
    )
    return r.stdout.strip() or r.stderr


def test_a_runner_killed_mid_training_is_replaced_and_its_run_crashes_and_is_run_again(tmp_path):
    cfg, data, stack = demo_home(tmp_path)
    up = stack.ratchet("up", timeout=300)
    api, supervisor = up["prefect_api_url"], up["processes"]["runner"]["pid"]
    pids = {supervisor}
    try:
        first = stack.wait("the runner", lambda: runner_record(stack.home), every=0.5)
        assert first["supervisor_pid"] == supervisor and first["restarts"] == 0, first
        stack.ratchet("ingest", data.clean[0])
        run = stack.wait("training under way", lambda: next(
            (r for r in train_runs(api) if r["state_type"] == "RUNNING"), None), every=1.0)
        stack.wait("the first trial", lambda: list((stack.home / "checkpoints").glob("*/*")), every=0.5)
        training = stack.wait("the flow run's process", lambda: flow_run_process(run["id"]), every=0.5)
        pids |= {first["pid"], training}
        killed_at = time.time()
        os.kill(first["pid"], signal.SIGKILL)  # the runner itself, not its flow run

        # from here on, no command: only reads
        second = stack.wait("a new runner", lambda: (r := runner_record(stack.home)) and r["pid"] != first["pid"]
                            and r, every=0.5)
        pids.add(second["pid"])
        assert second["restarts"] == 1 and second["last_exit"]["how"] == "signal SIGKILL", second
        assert stack.wait("the orphaned training killed", lambda: gone(training), timeout=30, every=0.5)

        def rerun_done():
            runs = train_runs(api)
            killed = next(r for r in runs if r["id"] == run["id"])
            later = [r for r in runs if r["id"] != run["id"] and r["parameters"].get("trigger") == "crash recovery"]
            done = killed["state_type"] == "CRASHED" and any(r["state_type"] == "COMPLETED" for r in later)
            return (killed, later, runs) if done else None

        killed, later, runs = stack.wait("the crashed run run again", rerun_done, timeout=900)
        assert "no heartbeat" in killed["state"]["message"], killed["state"]  # the heartbeat automation's
        assert len(later) == 1 and killed["run_count"] == 1, [(r["name"], r["state_type"]) for r in runs]
        v1 = stack.wait("a champion", lambda: stack.ratchet("status")["champion"])
        assert v1 == "1" and _versions(stack) == "1"  # the rerun registered one version, once
        beats = _heartbeats(api, run["id"])
        crashed_at = datetime.fromisoformat(killed["state"]["timestamp"].replace("Z", "+00:00")).timestamp()
        assert beats, "the killed run sent no heartbeat"
        print(f"{len(beats)} heartbeats of the killed run, gaps {[round(b - a, 1) for a, b in itertools.pairwise(beats)]} s;"
              f" last heartbeat -> Crashed {crashed_at - beats[-1]:.0f} s (window {cfg.loop.heartbeat_timeout_s} s);"
              f" killed -> Crashed {crashed_at - killed_at:.0f} s")

        # the new runner serves the deployments: the next batch trains, with no restart since
        status = stack.ratchet("status")["runner"]
        assert status["pid"] == second["pid"] and status["alive"] and status["restarts"] == 1, status
        stack.ratchet("ingest", data.clean[1])
        trained = stack.wait("the next batch trained", lambda: next(
            (r for r in train_runs(api) if r["parameters"].get("trigger") == "data published"
             and r["id"] != run["id"] and r["state_type"] == "COMPLETED"), None), timeout=900)
        assert trained["run_count"] == 1
        assert runner_record(stack.home)["pid"] == second["pid"]
        assert all(r["run_count"] <= 1 for r in train_runs(api))  # no run was run twice
    finally:
        stack.ratchet("down", timeout=120)
    assert all(gone(pid) for pid in pids), {pid: gone(pid) for pid in pids}
