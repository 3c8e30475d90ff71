"""The stack as a user runs it: `ratchet up`, data arrives with `ratchet ingest`, and nothing else.

Everything happens through the CLI in separate processes, as on a laptop: a Prefect server,
the deployment runner with its automations, and the inference service under live traffic
(from a load generator that posts labels back). The test only ingests, waits and reads.

Slow (several minutes): `make test-all` or `pytest -m slow tests/flows/test_stack.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ratchet.core.config import load_config
from ratchet.demo.stream import demo_traffic, make_demo_data
from tests.conftest import CONFIG_FILES
from tests.flows.stack import ROOT, Stack, flow_run_process, ready_health, start_load, train_runs
from tests.serving.helpers import feature_rows

pytestmark = pytest.mark.slow



def test_ingest_alone_brings_a_better_champion_to_all_traffic_and_down_aborts_a_canary(tmp_path):
    cfg = load_config([Path(f) for f in CONFIG_FILES])
    data = make_demo_data(cfg.demo, tmp_path / "incoming")
    stack = Stack(tmp_path / "home")
    stack.ratchet("init", "--schema-from", data.clean[0], "--target", data.target)
    up = stack.ratchet("up", timeout=300)
    service = up["service_url"]
    stop, out = tmp_path / "stop", tmp_path / "load.json"
    try:
        # 1. clean data: the automations train and release a first champion
        for path in data.clean:
            stack.ratchet("ingest", path)
        v1 = stack.wait("a first champion", lambda: stack.ratchet("status")["champion"])

        # users send drifted traffic (after the drift) and their labels come back
        frames = [demo_traffic(cfg.demo, data.drift_at, k) for k in range(20)]
        rows = tmp_path / "rows.jsonl"
        rows.write_text("\n".join(json.dumps({"row": r, "label": int(y)}) for f in frames
                                  for r, y in zip(feature_rows(f, data.target), f[data.target], strict=True)))
        load = start_load(service, rows, stop, out)

        # 2. THE CHECK: one drifted batch with `ratchet ingest`, no other command
        t0 = time.time()
        stack.ratchet("ingest", data.drifted[0])

        def recovered():
            s = stack.ratchet("status")
            health = httpx.get(f"{service}/health", timeout=5).json()
            done = s["champion"] != v1 and health["champion"] == s["champion"] and s["challenger"] is None
            return s if done and health["traffic"]["challenger_share"] == 0.0 else None

        v2 = stack.wait("a new champion at all traffic", recovered)["champion"]
        minutes = (time.time() - t0) / 60
        history = stack.ratchet("history")["entries"]
        promote = [e for e in history if e["action"] == "promote" and e["to_version"] == v2]
        assert promote and promote[-1]["from_version"] == v1, history
        steps = [e["traffic"] for e in history if e["action"] == "traffic" and e["to_version"] == v2]
        assert steps == cfg.canary.steps, history  # ramped step by step by the canary
        assert stack.ratchet("lineage", v2)["data_commit"] == stack.ratchet("status")["data"]
        print(f"ingest -> v{v2} at 100 % traffic in {minutes:.1f} min")
        stop.touch()
        load.communicate(timeout=60)
        result = json.loads(out.read_text())
        assert result["requests"] > 100 and result["non_2xx"] == 0 and result["transport_errors"] == {}, result
        assert {v1, v2} <= set(result["by_version"]), result

        # 3. `ratchet down` during a canary: the champion stays, the share goes back to 0
        stop.unlink()
        load = start_load(service, rows, stop, tmp_path / "load-2.json")  # traffic for the canary
        # a challenger as good as the champion (v2 registered again), and steps of a minute
        copy = subprocess.run(
            [sys.executable, "-c", "import sys; from ratchet.runtime.context import load_context; r = load_context().registry; "
             "v = r.register(r.version_info(sys.argv[1])['source'], {'data_commit': 'copy'}); "
             "r.set_alias('challenger', v); print(v)", v2],
            env=stack.env, cwd=ROOT, capture_output=True, text=True,
        )
        assert copy.returncode == 0, copy.stderr
        v3 = copy.stdout.strip().splitlines()[-1]
        slow = tmp_path / "slow-canary.yaml"
        slow.write_text("canary:\n  step_s: 60\n  max_step_s: 120\n")
        canary = stack.popen("--config", CONFIG_FILES[0], "--config", CONFIG_FILES[1], "--config", str(slow), "canary")
        stack.wait("the canary's first step", lambda: stack.ratchet("status")["traffic"]["challenger_share"] > 0,
                   timeout=180, every=1.0)
        down = stack.ratchet("down", timeout=120)
        assert "inference" in down["stopped"]
        canary.communicate(timeout=120)
        assert canary.returncode != 0  # its service went away mid-ramp
        history = stack.ratchet("history")["entries"]
        assert history[-1]["action"] == "abort" and history[-1]["from_version"] == v3, history[-1]
        assert history[-1]["evidence"]["share_at_abort"] > 0, history[-1]
        status = stack.ratchet("status")
        assert status["champion"] == v2 and status["traffic"]["challenger_share"] == 0.0, status
        assert not (stack.home / "serving" / "canary.json").exists()

        # state survives down and up: the same champion at all traffic, the history kept
        up = stack.ratchet("up", timeout=300)
        health = stack.wait("the service", lambda: ready_health(up["service_url"]))
        assert health["champion"] == v2 and health["traffic"]["challenger_share"] == 0.0, health
        assert len(stack.ratchet("history")["entries"]) == len(history)
    finally:
        stop.touch()
        stack.ratchet("down", timeout=120)


def test_a_training_run_killed_mid_training_is_run_again_and_registers_one_version(tmp_path):
    cfg = load_config([Path(f) for f in CONFIG_FILES])
    data = make_demo_data(cfg.demo, tmp_path / "incoming")
    stack = Stack(tmp_path / "home")
    stack.ratchet("init", "--schema-from", data.clean[0], "--target", data.target)
    api = stack.ratchet("up", timeout=300)["prefect_api_url"]
    try:
        stack.ratchet("ingest", data.clean[0])
        run = stack.wait("training under way", lambda: next(
            (r for r in train_runs(api) if r["state_type"] == "RUNNING"), None), every=1.0)
        # kill the process that runs it once the search has started (its study exists)
        stack.wait("the first trial", lambda: list((stack.home / "checkpoints").glob("*/*")), every=0.5)
        pid = stack.wait("the flow run's process", lambda: flow_run_process(run["id"]), every=0.5)
        os.kill(pid, 9)

        def rerun_done():
            runs = train_runs(api)
            states = {r["id"]: r["state_type"] for r in runs}
            later = [r for r in runs if r["id"] != run["id"] and r["parameters"].get("trigger") == "crash recovery"]
            return (states, later) if states[run["id"]] == "CRASHED" and any(
                r["state_type"] == "COMPLETED" for r in later) else None

        states, later = stack.wait("the crashed run run again", rerun_done)
        v1 = stack.wait("a champion", lambda: stack.ratchet("status")["champion"])
        versions = subprocess.run(
            [sys.executable, "-c", "from ratchet.runtime.context import load_context; c = load_context(); "
             "print(len(c.registry.client.search_model_versions(f\"name = '{c.cfg.model_name}'\")))"],
            env=stack.env, cwd=ROOT, capture_output=True, text=True,
        )
        assert versions.stdout.strip() == "1", (versions.stdout, versions.stderr)  # no duplicate version
        assert v1 == "1" and len(later) == 1, (states, later)
    finally:
        stack.ratchet("down", timeout=120)
