"""The loop under `ratchet up`, in the default suite: Prefect's automations alone move a model
from data to users. The test ingests, answers one approval, rolls back once and reads.

What it sees, in order: a rejected batch (exit 2, main unchanged); with ``release.approval:
required`` the first model waits (``ratchet status`` shows it pending) and becomes champion only
after ``ratchet approve --comment``, which the ledger keeps; approval switched off, a drifted
batch brings a new champion to 100% of live traffic through the canary's steps; ``ratchet
rollback`` restores the first champion at once and the service serves it; ``ratchet down``
stops everything.

Kept short for CI (two cores): the suite's small config (``configs/test.yaml``), one tuning
trial, a canary of two steps, one clean and one drifted batch: 6.5 minutes on two cores shared
with five other test runs (load average 8-10), less on CI's own two. The longer stack tests (a canary aborted by ``ratchet
down``, a killed training run, the watchdog, approval timeouts, concept drift, backup of a running
stack) stay ``slow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pandas as pd
import yaml

from tests.conftest import CONFIG_FILES
from tests.flows.stack import BIN, ROOT, demo_home, start_load
from tests.serving.helpers import feature_rows


def test_the_loop_runs_on_automations_alone_under_ratchet_up(tmp_path):
    from ratchet.demo.stream import demo_traffic

    cfg, data, stack = demo_home(tmp_path)
    project = tmp_path / "ratchet.yaml"  # read by every flow run when it starts, as a user's file is

    def configure(approval: str) -> None:
        project.write_text(yaml.safe_dump({
            "release": {"approval": approval, "approval_poll_s": 1},
            "canary": {"steps": [0.5, 1.0]},
            "tune": {"trials": 1},  # the loop, not the search, is under test
        }))

    configure("required")
    stack.env["RATCHET_CONFIG"] = os.pathsep.join([*CONFIG_FILES, str(project)])
    t0 = time.monotonic()
    stages: dict[str, float] = {}

    def lap(name: str) -> None:
        stages[name] = round(time.monotonic() - t0 - sum(stages.values()))

    up = stack.ratchet("up", timeout=300)
    lap("up")
    service = up["service_url"]
    stop, out = tmp_path / "stop", tmp_path / "load.json"
    load = None
    try:
        # a rejected batch (the target column missing): exit 2, main does not move
        main_before = stack.ratchet("status")["data"]
        bad = tmp_path / "bad.csv"
        pd.read_csv(data.clean[1]).drop(columns=[data.target]).to_csv(bad, index=False)
        r = subprocess.run([str(BIN / "ratchet"), "ingest", str(bad), "--json"],
                           env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, (r.stdout, r.stderr[-2000:])
        assert stack.ratchet("status")["data"] == main_before
        lap("rejected batch")

        # 1. a published batch: the automations train; the first model waits for a person
        published = stack.ratchet("ingest", data.clean[0])
        assert published["status"] == "published" and published["commit"] != main_before
        waiting = stack.wait("the first model waiting for approval", lambda: stack.ratchet("status")["pending_approval"],
                             timeout=600, every=2.0)
        v1 = waiting["version"]
        assert waiting["champion"] is None and waiting["reason"].startswith("first champion"), waiting
        assert stack.ratchet("status")["champion"] is None  # nothing serves before the signature
        stack.ratchet("approve", v1, "--comment", "first model, signed off", "--who", "qa")
        stack.wait("the first champion", lambda: stack.ratchet("status")["champion"] == v1, timeout=300, every=2.0)
        entries = stack.ratchet("history")["entries"]
        assert [(e["action"], e["to_version"]) for e in entries[-3:]] == [
            ("approval_requested", v1), ("approved", v1), ("promote", v1)], entries[-3:]
        assert entries[-2]["evidence"]["comment"] == "first model, signed off"
        lap("first champion, approved")

        # 2. approval off; live traffic with labels; a drifted batch: a new champion at all traffic
        configure("auto")
        frames = [demo_traffic(cfg.demo, data.drift_at, k) for k in range(20)]
        rows = tmp_path / "rows.jsonl"
        rows.write_text("\n".join(json.dumps({"row": r, "label": int(y)}) for f in frames
                                  for r, y in zip(feature_rows(f, data.target), f[data.target], strict=True)))
        load = start_load(service, rows, stop, out)
        stack.ratchet("ingest", data.drifted[0])

        def recovered():
            s = stack.ratchet("status")
            health = httpx.get(f"{service}/health", timeout=5).json()
            done = s["champion"] not in (None, v1) and health["champion"] == s["champion"] and s["challenger"] is None
            return s if done and health["traffic"]["challenger_share"] == 0.0 else None

        v2 = stack.wait("a new champion at all traffic", recovered)["champion"]
        history = stack.ratchet("history")["entries"]
        promote = [e for e in history if e["action"] == "promote" and e["to_version"] == v2]
        assert promote and promote[-1]["from_version"] == v1, history
        steps = [e["traffic"] for e in history if e["action"] == "traffic" and e["to_version"] == v2]
        assert steps == [0.5, 1.0], history  # ramped step by step by the canary
        stop.touch()
        load.communicate(timeout=60)
        result = json.loads(out.read_text())
        assert result["non_2xx"] == 0 and result["transport_errors"] == {}, result
        assert {v1, v2} <= set(result["by_version"]), result
        lap("drift to a new champion at 100%")

        # 3. a rollback: immediate, and the service serves the first champion again
        back = stack.ratchet("rollback")
        assert stack.ratchet("status")["champion"] == v1, back
        stack.wait("the service on the first champion", lambda: httpx.get(f"{service}/health", timeout=5).json()
                   .get("champion") == v1, timeout=120, every=1.0)
        last = stack.ratchet("history")["entries"][-1]
        assert (last["action"], last["from_version"], last["to_version"]) == ("rollback", v2, v1), last
        lap("rollback")
    finally:
        stop.touch()
        if load is not None and load.poll() is None:
            load.communicate(timeout=60)
        down = stack.ratchet("down", timeout=120)
    assert {"inference", "prefect-server"} <= set(down["stopped"]), down
    lap("down")
    print(f"the loop under ratchet up: {time.monotonic() - t0:.0f} s {stages}")
