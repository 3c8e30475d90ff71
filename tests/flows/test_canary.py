"""The canary flow on a running service under load: ramp and promote, then a broken challenger
is rolled back at its first step. Real Prefect (test harness), real MLflow on SQLite, a real
tiny model, real HTTP from a second process on 127.0.0.1; not one non-2xx response."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import pytest
import torch

from ratchet.core.config import load_config
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
from ratchet.demo.traffic import BackgroundServer
from ratchet.runtime.context import load_context
from ratchet.runtime.options import RunOptions
from ratchet.serving.app import create_app
from ratchet.training.registry import RegistryProvider
from tests.conftest import CONFIG_FILES
from tests.serving.helpers import feature_rows, train_tiny_predictor

TOKEN = "canary-t0ken"
ROOT = Path(__file__).resolve().parents[2]


def _register(ctx, predictor, example, note: str) -> str:
    ctx.registry.activate()
    with mlflow.start_run(run_name=note):
        uri = ctx.registry.log_predictor(predictor, example)
    return ctx.registry.register(uri, {"data_commit": "test", "note": note})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """v1 champion; v2 the same model registered again; v3 a copy whose weights went NaN
    (as after a diverged training run): every prediction fails."""
    home = tmp_path_factory.mktemp("canary-home")
    ctx = load_context(CONFIG_FILES, home=str(home))
    predictor, df = train_tiny_predictor(seed=3)
    example = df.drop(columns=[DEMO_TARGET]).head(5)
    v1 = _register(ctx, predictor, example, "v1")
    info = ctx.registry.version_info(v1)
    v2 = ctx.registry.register(info["source"], {"data_commit": "test", "note": "copy of v1"})
    broken = copy.deepcopy(predictor)
    with torch.no_grad():
        broken.module.net[0].weight[0, 0] = float("nan")
    v3 = _register(ctx, broken, example, "v3-nan")
    ctx.registry.set_alias("champion", v1)
    return ctx, home, (v1, v2, v3)


@pytest.fixture
def admin_secret(monkeypatch):
    """The token in a Prefect Secret block (the flow's fallback when the env var is unset)."""
    from prefect.blocks.system import Secret

    monkeypatch.delenv("RATCHET_ADMIN_TOKEN", raising=False)
    cfg = load_config([Path(f) for f in CONFIG_FILES])
    Secret(value=TOKEN).save(cfg.canary.admin_token_block, overwrite=True)


def test_canary_promotes_then_rolls_back_under_load(world, admin_secret, tmp_path):
    from flows.canary import canary_flow

    ctx, home, (v1, v2, v3) = world
    app = create_app(
        RegistryProvider(ctx.registry), ctx.cfg.serving, ctx.settings.serving_dir,
        admin_token=TOKEN, watch_interval_s=0.5,
    )
    server = BackgroundServer(app).start()
    rows_file = tmp_path / "rows.jsonl"
    frame = generate_batch(1, 400, seed=3)
    rows_file.write_text(
        "\n".join(
            json.dumps({"row": r, "label": int(y)})
            for r, y in zip(feature_rows(frame, DEMO_TARGET), frame[DEMO_TARGET], strict=True)
        )
    )
    stop = tmp_path / "stop"
    out = tmp_path / "load.json"
    load = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.loadgen", "--url", server.url, "--rows", str(rows_file),
         "--connections", "4", "--rate", "120", "--duration", "150", "--max-requests", "30000",
         "--feedback", "0.5", "--stop-file", str(stop), "--out", str(out)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.0)  # the load is running before the ramp starts
        common = {"options": RunOptions(config_files=CONFIG_FILES, home=str(home)), "service_url": server.url}

        # 1. a challenger as good as the champion: every step passes, it is promoted
        ctx.registry.set_alias("challenger", v2)
        promoted = canary_flow(trigger="test: canary", **common).to_dict()
        assert promoted["action"] == "promote", promoted
        assert [s["share"] for s in promoted["steps"]] == ctx.cfg.canary.steps
        assert {s["decision"] for s in promoted["steps"]} == {"pass"}
        assert ctx.registry.aliases() == {"champion": v2, "challenger": None, "previous": v1}
        health = httpx.get(f"{server.url}/health").json()
        assert (health["champion"], health["challenger"]) == (v2, None)
        assert health["traffic"]["challenger_share"] == 0.0
        assert Path(promoted["plot"]).exists()

        # 2. a challenger whose every prediction fails: rolled back at the step that breaches,
        # never ramped past it. Which step that is depends on how many requests the loaded
        # machine fits in a step's window (the sequential test needs a few errors to decide).
        ctx.registry.set_alias("challenger", v3)
        rolled = canary_flow(trigger="test: canary", **common).to_dict()
        assert rolled["action"] == "rollback", rolled
        *passed, breached = rolled["steps"]
        assert breached["decision"] == "breach" and all(s["decision"] == "pass" for s in passed)
        assert breached["share"] < ctx.cfg.canary.steps[-1]
        assert "error rate" in breached["breaches"]
        assert ctx.registry.aliases() == {"champion": v2, "challenger": None, "previous": v1}
        assert ctx.registry.version_info(v3)["tags"].get("canary") == "rolled_back"
        health = httpx.get(f"{server.url}/health").json()
        assert (health["champion"], health["challenger"]) == (v2, None)
        assert health["traffic"]["challenger_share"] == 0.0
        stats = httpx.get(f"{server.url}/stats").json()["versions"]
        assert stats[v3]["fallbacks"] >= 1 and stats[v3]["requests"] == 0  # never answered a caller
        time.sleep(0.5)  # load after the rollback too
    finally:
        stop.touch()
        _, err = load.communicate(timeout=60)
        server.stop()
    assert load.returncode == 0, err.decode()[-2000:]
    result = json.loads(out.read_text())

    # the must-hold: not one failed request through ramp, promotion and rollback
    assert result["requests"] >= 300, result
    assert result["non_2xx"] == 0 and result["transport_errors"] == {}, result
    assert result["feedback_non_2xx"] == 0, result
    assert set(result["by_version"]) == {v1, v2}, result  # v3 never answered

    entries = ctx.ledger.history()
    ramp = [(e.action, e.traffic, e.evidence.get("decision")) for e in entries]
    shares = ctx.cfg.canary.steps
    rolled_ramp = [("traffic", s["share"], s["decision"]) for s in rolled["steps"]]
    assert ramp == [
        *[("traffic", s, "pass") for s in shares], ("promote", 1.0, None),
        *rolled_ramp, ("rollback", 0.0, None),
    ], ramp
    promote_entry, rollback_entry = entries[len(shares)], entries[-1]
    # each canary's entries name its challenger's data commit, read once when it began
    for version, rows in ((v2, entries[:len(shares) + 1]), (v3, entries[len(shares) + 1:])):
        assert {e.data_commit for e in rows} == {ctx.registry.lineage(version).data_commit}, rows
    assert (promote_entry.from_version, promote_entry.to_version) == (v1, v2)
    assert [s["share"] for s in promote_entry.evidence["canary"]] == shares
    last = promote_entry.evidence["canary"][-1]["evidence"]["canary"]
    assert last["challenger_feedback"] > 0 and last["accuracy_p_worse"] > 0.001  # labels arrived; no alarm
    assert last["error_sprt_llr"] < last["error_sprt_bounds"][1]
    assert (rollback_entry.from_version, rollback_entry.to_version) == (v3, v2)
    assert rollback_entry.evidence["challenger_alias_removed"] is True
    step = entries[-2].evidence  # the step that breached
    assert step["canary"]["error_sprt_llr"] >= step["canary"]["error_sprt_bounds"][1]
