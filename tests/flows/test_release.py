"""The release flow: the offline gate, then the canary on the running service, on a real drift.

v1 learns the clean rule; the concept drifts; v2 learns the new rule. The release of v1 has
no champion to compare with live, so the gate's promotion is its rollout. The release of v2
passes the gate and ramps on a live service under drifted traffic with feedback: the canary
promotes it, the ledger keeps the gate's evidence and every step, and no request fails.
Real Prefect, MLflow, data repository, Lightning and HTTP; nothing stands in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ratchet.demo.stream import demo_traffic
from ratchet.demo.traffic import BackgroundServer
from ratchet.runtime.context import load_context
from ratchet.runtime.home import init_home
from ratchet.runtime.options import RunOptions
from ratchet.serving.app import create_app
from ratchet.training.registry import RegistryProvider
from tests.conftest import CONFIG_FILES
from tests.serving.helpers import feature_rows

# slow (about 90 s on two busy cores): its ground, a drifted batch's challenger gated and ramped
# onto live traffic by the canary with no failed request, is the default suite's
# tests/flows/test_loop_stack.py, there through `ratchet up` and its automations
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _rows_file(path: Path, frames, target: str) -> Path:
    lines = []
    for frame in frames:
        for row, y in zip(feature_rows(frame, target), frame[target], strict=True):
            lines.append(json.dumps({"row": row, "label": int(y)}))
    path.write_text("\n".join(lines))
    return path


def test_release_gates_then_canaries_the_better_model_onto_live_traffic(home, demo_data, tmp_path):
    from flows.ingest import ingest_flow
    from flows.release import release_flow
    from flows.train import train_flow

    common = {"options": RunOptions(config_files=CONFIG_FILES, home=str(home))}
    ctx = load_context(CONFIG_FILES, home=str(home))
    init_home(ctx, demo_data.clean[0], demo_data.target)
    cfg = ctx.cfg

    for path in demo_data.clean:
        ingest_flow(path, **common)
    train_flow(window_batches=len(demo_data.clean), trigger="test: first", **common)
    first = release_flow(trigger="test: first", **common).to_dict()
    assert first["action"] == "promote" and first["canary"] is None, first  # nothing live to compare
    v1 = first["champion"]

    server = BackgroundServer(
        create_app(RegistryProvider(ctx.registry), cfg.serving, ctx.settings.serving_dir, watch_interval_s=0.5)
    ).start()
    stop, out = tmp_path / "stop", tmp_path / "load.json"
    rows = _rows_file(tmp_path / "rows.jsonl", [demo_traffic(cfg.demo, demo_data.drift_at, k) for k in range(12)],
                      demo_data.target)
    load = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.loadgen", "--url", server.url, "--rows", str(rows),
         "--connections", "4", "--rate", "120", "--duration", "300", "--feedback", "0.5",
         "--stop-file", str(stop), "--out", str(out)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        for path in demo_data.drifted:
            ingest_flow(path, **common)
        train_flow(window_batches=len(demo_data.drifted), trigger="test: drift", **common)
        released = release_flow(trigger="test: drift", service_url=server.url, **common).to_dict()
        health = httpx.get(f"{server.url}/health").json()
    finally:
        stop.touch()
        _, err = load.communicate(timeout=60)
        server.stop()

    # the gate passed it, the canary ramped every step and promoted it
    assert released["decision"] == "promote" and released["action"] == "promote", released
    v2 = released["champion"]
    assert v2 != v1
    assert ctx.registry.version_info(v2)["tags"]["window_rule"] == f"last {len(demo_data.drifted)}"  # lineage
    assert [s["share"] for s in released["canary"]] == cfg.canary.steps
    assert {s["decision"] for s in released["canary"]} == {"pass"}, released["canary"]
    assert ctx.registry.aliases() == {"champion": v2, "challenger": None, "previous": v1}
    assert (health["champion"], health["challenger"]) == (v2, None)
    assert health["traffic"]["challenger_share"] == 0.0
    assert not (ctx.settings.serving_dir / "canary.json").exists()  # the canary ended

    # on the drifted traffic the new model is the better one, live too
    entries = ctx.ledger.history()
    promote = entries[-1]
    assert (promote.action, promote.from_version, promote.to_version) == ("promote", v1, v2)
    assert promote.evidence["p_value"] < cfg.gate.alpha  # the offline gate's evidence ...
    last = promote.evidence["canary"][-1]["evidence"]["canary"]  # ... and the live one
    assert last["challenger_feedback"] > 0 and last["challenger_accuracy"] > last["champion_accuracy"]
    assert [(e.action, e.traffic) for e in entries[-len(cfg.canary.steps) - 1:-1]] == [
        ("traffic", s) for s in cfg.canary.steps
    ]

    assert load.returncode == 0, err.decode()[-2000:]
    result = json.loads(out.read_text())
    assert result["non_2xx"] == 0 and result["transport_errors"] == {}, result
    assert {v1, v2} <= set(result["by_version"]), result
