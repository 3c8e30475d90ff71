"""A canary on a quiet service: no traffic reaches it, so no step can gather evidence. It ends
``inconclusive`` (share back to 0, the champion stays, the challenger keeps its alias), recorded
as such in the ledger and the report, never as a rollback. Real Prefect (test harness), real
MLflow on SQLite, a real tiny model, a real service on 127.0.0.1; nothing sends it requests."""

from __future__ import annotations

import httpx
import mlflow
import pytest

from ratchet.demo.synthetic import DEMO_TARGET
from ratchet.demo.traffic import BackgroundServer
from ratchet.runtime.context import load_context
from ratchet.runtime.options import RunOptions
from ratchet.serving.app import create_app
from ratchet.training.registry import RegistryProvider
from tests.conftest import CONFIG_FILES
from tests.serving.helpers import train_tiny_predictor

QUIET = {"canary": {"step_s": 0.2, "max_step_s": 1.0, "poll_s": 0.2, "min_requests": 5}}


@pytest.fixture(scope="module")
def quiet_world(tmp_path_factory):
    """v1 champion, v2 (the same model registered again) the challenger, a service with no
    admin token serving both, and not one request."""
    home = tmp_path_factory.mktemp("quiet-canary-home")
    ctx = load_context(CONFIG_FILES, QUIET, home=str(home))
    predictor, df = train_tiny_predictor(seed=5, rows=600, epochs=1)
    ctx.registry.activate()
    with mlflow.start_run(run_name="v1"):
        uri = ctx.registry.log_predictor(predictor, df.drop(columns=[DEMO_TARGET]).head(5))
    v1 = ctx.registry.register(uri, {"data_commit": "c0ffee", "note": "v1"})
    v2 = ctx.registry.register(uri, {"data_commit": "c0ffee", "note": "copy of v1"})
    ctx.registry.set_alias("champion", v1)
    server = BackgroundServer(
        create_app(RegistryProvider(ctx.registry), ctx.cfg.serving, ctx.settings.serving_dir, watch_interval_s=0.5)
    ).start()
    yield ctx, home, server, (v1, v2)
    server.stop()


def test_a_canary_without_traffic_ends_inconclusive_not_rolled_back(quiet_world, monkeypatch):
    from flows.canary import canary_flow

    monkeypatch.delenv("RATCHET_ADMIN_TOKEN", raising=False)
    ctx, home, server, (v1, v2) = quiet_world
    ctx.registry.set_alias("challenger", v2)
    options = RunOptions(config_files=CONFIG_FILES, overrides=QUIET, home=str(home))
    result = canary_flow(trigger="test: quiet", service_url=server.url, options=options).to_dict()

    assert result["action"] == "inconclusive", result
    assert result["champion"] == v1 and result["challenger"] == v2
    (step,) = result["steps"]  # ended at the first step, without a breach
    assert step["decision"] == "insufficient" and step["challenger_requests"] == 0
    assert "not enough evidence" in result["reason"][0] and "min_requests=5" in result["reason"][0]
    assert ctx.registry.aliases()["champion"] == v1
    assert ctx.registry.aliases()["challenger"] == v2  # kept: nothing spoke against it
    assert ctx.registry.version_info(v2)["tags"].get("canary") == "inconclusive"
    health = httpx.get(f"{server.url}/health").json()
    assert (health["champion"], health["challenger"]) == (v1, v2)
    assert health["traffic"]["challenger_share"] == 0.0
    assert not (ctx.settings.serving_dir / "canary.json").exists()

    actions = [(e.action, e.from_version, e.to_version, e.traffic) for e in ctx.ledger.history()]
    assert actions == [("traffic", v1, v2, ctx.cfg.canary.steps[0]), ("inconclusive", v2, v1, 0.0)], actions
    assert "rollback" not in {a for a, *_ in actions}
    last = ctx.ledger.history()[-1]
    assert last.evidence["challenger_alias_removed"] is False


def test_history_shows_the_inconclusive_end_apart(quiet_world, cli):
    import json

    ctx, home, _, _ = quiet_world
    out = cli("--home", str(home), "history", "--json")
    assert out.exit_code == 0, out.output
    actions = [e["action"] for e in json.loads(out.output)["entries"]]
    assert actions[-1] == "inconclusive"
    text = cli("--home", str(home), "history").output
    assert "inconclusive" in text.splitlines()[-1] and "rollback" not in text


def test_the_cli_canary_says_it_promoted_and_announces_it(quiet_world, cli, tmp_path, monkeypatch):
    """Steps that need no requests pass on the quiet service: `ratchet canary` promotes, says
    so, and sends ``ratchet.model.promoted`` (no release around it would)."""
    import json
    from datetime import UTC, datetime

    from tests.events import recorded_events

    monkeypatch.delenv("RATCHET_ADMIN_TOKEN", raising=False)
    ctx, home, server, (v1, v2) = quiet_world
    ctx.registry.set_alias("challenger", v2)
    lenient = tmp_path / "no-requests-needed.yaml"
    lenient.write_text("canary:\n  step_s: 0.2\n  poll_s: 0.2\n  min_requests: 0\n")
    configs = [a for f in (*CONFIG_FILES, lenient) for a in ("--config", str(f))]
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # events of earlier tests are on the same server
    r = cli(*configs, "--home", str(home), "canary", "--service-url", server.url)
    assert r.exit_code == 0, r.output
    assert f"promoted version {v2} to champion (was {v1}; canary 5% pass" in r.output, r.output
    assert ctx.registry.aliases()["champion"] == v2
    (event,) = recorded_events("ratchet.model.promoted", lambda e: e["occurred"] >= since
                               and e["payload"].get("champion") == v2)
    assert event["payload"]["challenger"] == v2 and event["payload"]["action"] == "promote", event
    back = cli(*configs, "--home", str(home), "rollback", "--json")
    assert back.exit_code == 0 and json.loads(back.stdout)["champion"] == v1, back.output
