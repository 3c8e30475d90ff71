"""Governed promotion: with ``release.approval: required`` the release pauses after the gate
(Prefect's pause_flow_run with an ApprovalInput) until `ratchet approve` / `ratchet reject`
resume it through the Prefect API, or the timeout keeps the champion. Real Prefect (test
harness), MLflow on SQLite, the embedded data repository, real tiny Lightning models: a
champion that learnt shuffled labels and a challenger that learnt the rule, so the gate passes."""

from __future__ import annotations

import json
import threading
import time

import mlflow
import numpy as np
import pandas as pd
import pytest

from ratchet.core.config import TrainConfig
from ratchet.delivery.approval import read_pending
from ratchet.runtime.context import load_context
from ratchet.runtime.home import init_home
from ratchet.runtime.options import RunOptions
from ratchet.training.model.fit import fit
from tests.conftest import CONFIG_FILES


def _overrides(timeout_s: int) -> dict:
    return {"release": {"approval": "required", "approval_timeout_s": timeout_s, "approval_poll_s": 1},
            "canary": {"on_release": "never"}}


@pytest.fixture(scope="module")
def governed(tmp_path_factory, demo_data):
    from flows.ingest import ingest_flow

    home = tmp_path_factory.mktemp("approval-home")
    ctx = load_context(CONFIG_FILES, home=str(home))
    init_home(ctx, demo_data.clean[0], demo_data.target)
    ingest_flow(demo_data.clean[0], options=RunOptions(config_files=CONFIG_FILES, home=str(home)))
    main = ctx.repo.resolve(ctx.cfg.data.main_branch)
    df = pd.read_csv(demo_data.clean[0])
    shuffled = df.assign(**{demo_data.target: np.random.default_rng(0).permutation(df[demo_data.target].values)})
    ctx.registry.activate()
    uris = {}
    for name, frame in (("noise", shuffled), ("rule", df)):
        cut = int(len(frame) * 0.8)
        predictor = fit(frame.iloc[:cut], frame.iloc[cut:], ctx.schema, TrainConfig(max_epochs=3), progress=False).predictor
        with mlflow.start_run(run_name=name):
            uris[name] = ctx.registry.log_predictor(predictor, frame.drop(columns=[demo_data.target]).head(5))
    tags = {"data_commit": main, "window_batches": "1"}
    champion = ctx.registry.register(uris["noise"], tags)

    def challenger() -> str:
        """A fresh version of the good model, alias challenger; the noisy one champion again."""
        ctx.registry.set_alias("champion", champion)
        v = ctx.registry.register(uris["rule"], tags)
        ctx.registry.set_alias("challenger", v)
        return v

    return ctx, home, champion, challenger


def _release(home, timeout_s: int) -> tuple[threading.Thread, dict]:
    from flows.release import release_flow

    out: dict = {}
    options = RunOptions(config_files=CONFIG_FILES, overrides=_overrides(timeout_s), home=str(home))

    def run() -> None:
        try:
            out["result"] = release_flow(trigger="test: governed", options=options).to_dict()
        except BaseException as e:  # the assertion below shows it
            out["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _artifact(key: str, flow_run_id: str) -> str:
    """The markdown of the artifact ``key`` the flow run published."""
    import asyncio
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])))

    # seen once in a full run on a loaded machine: the artifact was not readable yet when asked
    # first; a short wait for it, not a weaker check
    deadline = time.monotonic() + 30
    arts = asyncio.run(read())
    while not arts and time.monotonic() < deadline:
        time.sleep(0.5)
        arts = asyncio.run(read())
    (art,) = arts
    return str(art.data)


def _wait_pending(home, version: str, out: dict, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and "error" not in out:
        pending = read_pending(home)
        if pending is not None and pending["version"] == version:
            return pending
        time.sleep(0.2)
    raise AssertionError(f"no pending approval of v{version}: {out}")


def test_approve_promotes_and_history_records_who_and_why(governed, cli):
    ctx, home, champion, challenger = governed
    v = challenger()
    thread, out = _release(home, 120)
    pending = _wait_pending(home, v, out)
    status = json.loads(cli("--home", str(home), "status", "--json").output)
    assert status["pending_approval"]["version"] == v
    assert status["pending_approval"]["flow_run_url"] == pending["flow_run_url"] and pending["since"] > 0
    assert ctx.registry.version_info(v)["tags"]["approval"] == "pending"

    artifact = _artifact("approval-request", pending["flow_run_id"])
    assert f"v{v}" in artifact and "p_value" in artifact and "improvement_ci" in artifact
    assert "data_window" in artifact and f"ratchet approve {v}" in artifact

    r = cli("--home", str(home), "approve", v, "--comment", "offline evidence is clear", "--who", "alice", "--json")
    assert r.exit_code == 0, r.output
    thread.join(120)
    assert "error" not in out, out
    assert out["result"]["action"] == "promote" and out["result"]["champion"] == v, out
    assert ctx.registry.aliases()["champion"] == v
    tags = ctx.registry.version_info(v)["tags"]
    assert (tags["approval"], tags["approval_by"], tags["approval_comment"]) == ("approved", "alice",
                                                                                 "offline evidence is clear")
    assert json.loads(cli("--home", str(home), "status", "--json").output)["pending_approval"] is None

    entries = json.loads(cli("--home", str(home), "history", "--json").output)["entries"]
    actions = [(e["action"], e["to_version"]) for e in entries[-3:]]
    assert actions == [("approval_requested", v), ("approved", v), ("promote", v)], actions
    requested, approved, promoted = entries[-3:]
    assert requested["evidence"]["p_value"] is not None and requested["evidence"]["flow_run_url"]
    assert (approved["evidence"]["who"], approved["evidence"]["comment"]) == ("alice", "offline evidence is clear")
    assert promoted["evidence"]["approval"]["who"] == "alice"


def test_the_first_champion_waits_for_approval_too(governed, cli):
    """No champion yet: the release still pauses, and the model serves only once approved."""
    ctx, home, _, challenger = governed
    v = challenger()
    ctx.registry.delete_alias("champion")
    thread, out = _release(home, 120)
    pending = _wait_pending(home, v, out)
    assert pending["champion"] is None and pending["reason"].startswith("first champion"), pending
    assert ctx.registry.aliases()["champion"] is None  # nothing serves while it waits
    assert "no champion yet" in _artifact("approval-request", pending["flow_run_id"])
    r = cli("--home", str(home), "approve", v, "--comment", "signed off by QA", "--who", "carol")
    assert r.exit_code == 0, r.output
    thread.join(120)
    assert "error" not in out, out
    assert out["result"]["action"] == "promote" and out["result"]["champion"] == v, out
    assert ctx.registry.aliases()["champion"] == v
    entries = ctx.ledger.history()[-3:]
    assert [(e.action, e.to_version) for e in entries] == [("approval_requested", v), ("approved", v), ("promote", v)]
    assert (entries[1].evidence["who"], entries[1].evidence["comment"]) == ("carol", "signed off by QA")


def test_reject_keeps_the_champion(governed, cli):
    ctx, home, champion, challenger = governed
    v = challenger()
    thread, out = _release(home, 120)
    _wait_pending(home, v, out)
    r = cli("--home", str(home), "reject", "--comment", "not before the audit", "--who", "bob")
    assert r.exit_code == 0, r.output
    thread.join(120)
    assert out["result"]["action"] == "rejected" and out["result"]["champion"] == champion, out
    assert ctx.registry.aliases()["champion"] == champion
    last = ctx.ledger.history()[-1]
    assert (last.action, last.evidence["who"], last.evidence["comment"]) == ("rejected", "bob", "not before the audit")
    assert ctx.registry.version_info(v)["tags"]["approval"] == "rejected"
    assert cli("--home", str(home), "approve").exit_code == 1  # nothing waits any more


def test_no_answer_within_the_timeout_keeps_the_champion(governed):
    ctx, home, champion, challenger = governed
    v = challenger()
    thread, out = _release(home, 3)
    thread.join(120)
    assert "error" not in out, out
    assert out["result"]["action"] == "approval_timeout" and out["result"]["champion"] == champion, out
    assert ctx.registry.aliases()["champion"] == champion
    last = ctx.ledger.history()[-1]
    assert last.action == "approval_timeout" and last.to_version == v and "kept" in last.evidence["summary"]
    assert read_pending(home) is None


def test_a_newer_challenger_supersedes_a_pending_approval(governed, cli):
    ctx, home, champion, challenger = governed
    older = challenger()
    first, out1 = _release(home, 120)
    _wait_pending(home, older, out1)
    newer = ctx.registry.register(ctx.registry.version_info(older)["source"],
                                  ctx.registry.version_info(older)["tags"])
    ctx.registry.set_alias("challenger", newer)
    second, out2 = _release(home, 120)
    first.join(120)
    assert out1["result"]["action"] == "approval_superseded", out1
    _wait_pending(home, newer, out2)
    assert cli("--home", str(home), "reject", newer).exit_code == 0
    second.join(120)
    assert out2["result"]["action"] == "rejected", out2
    superseded = next(e for e in reversed(ctx.ledger.history()) if e.action == "approval_superseded")
    assert superseded.to_version == older and superseded.evidence["superseded_by"] == newer


def test_an_inconclusive_canary_can_be_promoted_by_approval(governed, cli):
    """A quiet service: the canary ends inconclusive; with canary.on_inconclusive: approval a
    person promotes the challenger anyway, and the promotion keeps the canary and the approval."""
    from flows.release import release_flow
    from ratchet.demo.traffic import BackgroundServer
    from ratchet.serving.app import create_app
    from ratchet.training.registry import RegistryProvider

    ctx, home, champion, challenger = governed
    v = challenger()
    server = BackgroundServer(create_app(RegistryProvider(ctx.registry), ctx.cfg.serving,
                                         ctx.settings.serving_dir, watch_interval_s=0.5)).start()
    overrides = {"release": {"approval": "auto", "approval_timeout_s": 120, "approval_poll_s": 1},
                 "canary": {"on_release": "always", "on_inconclusive": "approval", "step_s": 0.2,
                            "max_step_s": 1.0, "poll_s": 0.2, "min_requests": 5}}
    options = RunOptions(config_files=CONFIG_FILES, overrides=overrides, home=str(home))
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", release_flow(
        trigger="test: quiet", service_url=server.url, options=options).to_dict()), daemon=True)
    try:
        thread.start()
        pending = _wait_pending(home, v, out)
        assert pending["reason"] == "canary inconclusive"
        assert cli("--home", str(home), "approve", v, "--who", "carol", "--comment", "quiet service").exit_code == 0
        thread.join(120)
    finally:
        server.stop()
    assert out["result"]["action"] == "promote" and out["result"]["champion"] == v, out
    actions = [e.action for e in ctx.ledger.history()[-5:]]
    assert actions == ["traffic", "inconclusive", "approval_requested", "approved", "promote"], actions
    promoted = ctx.ledger.history()[-1]
    assert promoted.evidence["approval"]["who"] == "carol" and promoted.evidence["canary"]["action"] == "inconclusive"
