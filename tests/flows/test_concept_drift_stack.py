"""Pure concept drift with the stack up: `ratchet up`, `ratchet ingest`, live traffic whose
labels come back, and no other command.

River's Agrawal loan stream (strings and numbers): six batches of classification function 2
bring a first champion; users then send traffic labelled by function 8 (only the labelling
rule changed) and the drifted batches are ingested one at a time. By the third drifted batch
(or sooner) a new champion must serve all traffic: the batch scores at ingest see the change,
training starts its window at the onset, the gate judges on post-onset rows, and the canary
ramps it on live accuracy.

Slow (several minutes): `pytest -m slow tests/flows/test_concept_drift_stack.py`.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from benchmarks.drift_recovery import AGRAWAL_NEW, TARGET, agrawal_frame, agrawal_stream
from tests.flows.stack import Stack, challenger_decided, start_load, train_runs
from tests.serving.helpers import feature_rows

pytestmark = pytest.mark.slow

ROWS, DRIFT_AT, SEED = 500, 6, 11


def test_a_pure_concept_drift_brings_a_new_champion_to_all_traffic_within_three_batches(tmp_path):
    batches = []
    for i, df in enumerate(agrawal_stream(DRIFT_AT + 3, ROWS, DRIFT_AT, SEED)):
        batches.append(tmp_path / f"loans-{i}.csv")
        df.to_csv(batches[-1], index=False)
    stack = Stack(tmp_path / "home")
    stack.ratchet("init", "--schema-from", str(batches[0]), "--target", TARGET)
    up = stack.ratchet("up", timeout=300)
    service, api = up["service_url"], up["prefect_api_url"]
    stop, out = tmp_path / "stop", tmp_path / "load.json"
    load = None
    try:
        # 1. six batches of the old rule: the automations train and release a first champion
        for path in batches[:DRIFT_AT]:
            stack.ratchet("ingest", str(path))

        def settled():  # every clean batch trained on and every challenger decided: the old rule's champion
            s = stack.ratchet("status")
            runs = train_runs(api)
            busy = not runs or any(r["state_type"] not in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED") for r in runs)
            return None if busy or not challenger_decided(s, stack.ratchet("history")["entries"]) else s["champion"]

        v1 = stack.wait("a first champion and a quiet loop", settled)

        # users now meet the new rule, and their labels come back
        live = agrawal_frame(4000, SEED * 1000 + 500, AGRAWAL_NEW)
        rows = tmp_path / "rows.jsonl"
        rows.write_text("\n".join(json.dumps({"row": r, "label": int(y)})
                                  for r, y in zip(feature_rows(live, TARGET), live[TARGET], strict=True)))
        load = start_load(service, rows, stop, out)

        def recovered():
            s = stack.ratchet("status")
            health = httpx.get(f"{service}/health", timeout=5).json()
            done = s["champion"] not in (None, v1) and health["champion"] == s["champion"] \
                and challenger_decided(s, stack.ratchet("history")["entries"])
            if not done or health["traffic"]["challenger_share"] != 0.0:
                return None
            rule = stack.ratchet("lineage", s["champion"])["data_window_rule"]
            return s if "(none found)" not in rule else None  # a model of the new rule, not another old one

        # 2. THE CHECK: drifted batches one at a time with `ratchet ingest`, no other command
        t0, v2, used = time.time(), None, 0
        for k, path in enumerate(batches[DRIFT_AT:]):
            report = stack.ratchet("ingest", str(path))
            used += 1
            assert report["concept"]["detected"], report["concept"]
            try:  # give the loop time to act on this batch before the next one arrives
                v2 = stack.wait("a new champion at all traffic", recovered, timeout=900 if k == 2 else 240)["champion"]
                break
            except AssertionError:
                continue
        assert v2 is not None, stack.ratchet("history")
        print(f"new champion v{v2} at 100 % traffic after {used} drifted batch(es), "
              f"{(time.time() - t0) / 60:.1f} min after the first")
        history = stack.ratchet("history")["entries"]
        promote = [e for e in history if e["action"] == "promote" and e["to_version"] == v2]
        assert promote and promote[-1]["from_version"] == v1, history
        lineage = stack.ratchet("lineage", v2)
        # trained on the drifted batches only (train.min_window_rows is 0)
        assert int(lineage["data_window_batches"]) <= used, lineage["data_window_rule"]
        print(f"v{v2}: {lineage['data_window_rule']}")
        stop.touch()
        load.communicate(timeout=60)
        result = json.loads(out.read_text())
        assert result["non_2xx"] == 0 and {v1, v2} <= set(result["by_version"]), result
    finally:
        stop.touch()
        if load is not None and load.poll() is None:
            load.communicate(timeout=60)
        stack.ratchet("down", timeout=120)
