"""Governed promotion with `ratchet up`: the stack's own release runs (started by the
``ratchet.model.registered`` automation) wait for a person with ``release.approval: required``,
and `ratchet approve` / `ratchet reject` answer them; no answer in time keeps the champion; on a
service without traffic a better challenger's canary ends ``inconclusive``; and a real HTTP
receiver on 127.0.0.1, set as ``notify.webhook_url``, gets the stack's messages for a rejected
batch, a promotion, a rollback and a failed run.

One `ratchet up`, challengers in sequence. The champion learnt shuffled labels and each
challenger is a fresh version of a model that learnt the rule, so the gate passes every time
and the person's answer decides. Between challengers the test edits the project's config file,
as a user would: each flow run reads it when it starts.

Slow (a few minutes): `pytest -m slow tests/flows/test_approval_stack.py`.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from ratchet.core.config import TrainConfig
from ratchet.runtime.context import load_context
from ratchet.runtime.home import init_home
from ratchet.runtime.options import RunOptions
from ratchet.training.model.fit import fit
from tests.conftest import CONFIG_FILES
from tests.flows.stack import BIN, ROOT, Stack
from tests.flows.test_notifications import Receiver, verify

pytestmark = pytest.mark.slow

# registered as the training flow does: a new version, alias challenger, then the event the
# release automation reacts to (sent to the stack's Prefect server)
NEW_CHALLENGER = """
import sys
from prefect.events.worker import EventsWorker
from ratchet.runtime.context import load_context
from tasks.events import emit_model_event
ctx = load_context()
info = ctx.registry.version_info(sys.argv[1])
tags = {k: info["tags"][k] for k in ("data_commit", "window_batches")}
v = ctx.registry.register(info["source"], tags)
ctx.registry.set_alias("challenger", v)
emit_model_event("ratchet.model.registered", ctx.cfg.model_name,
                 {"version": v, "data_commit": tags["data_commit"], "trigger": "test"})
EventsWorker.drain_all()
print(v)
"""


def _models(home, demo_data) -> tuple[str, str]:
    """Main holds one clean batch; v1 (shuffled labels) is champion, v2 (the rule) is the
    source every challenger is registered from."""
    from flows.ingest import ingest_flow

    ctx = load_context(CONFIG_FILES, home=str(home))
    init_home(ctx, demo_data.clean[0], demo_data.target)
    ingest_flow(demo_data.clean[0], options=RunOptions(config_files=CONFIG_FILES, home=str(home)))
    main = ctx.repo.resolve(ctx.cfg.data.main_branch)
    df = pd.read_csv(demo_data.clean[0])
    shuffled = df.assign(**{demo_data.target: np.random.default_rng(0).permutation(df[demo_data.target].values)})
    ctx.registry.activate()
    versions = []
    for name, frame in (("noise", shuffled), ("rule", df)):
        cut = int(len(frame) * 0.8)
        predictor = fit(frame.iloc[:cut], frame.iloc[cut:], ctx.schema, TrainConfig(max_epochs=3), progress=False).predictor
        with mlflow.start_run(run_name=name):
            uri = ctx.registry.log_predictor(predictor, frame.drop(columns=[demo_data.target]).head(5))
        versions.append(ctx.registry.register(uri, {"data_commit": main, "window_batches": "1"}))
    ctx.registry.set_alias("champion", versions[0])
    return versions[0], versions[1]


def test_approval_reject_timeout_and_an_inconclusive_canary_under_ratchet_up(tmp_path, demo_data):
    stack = Stack(tmp_path / "home")
    champion, rule = _models(stack.home, demo_data)
    receiver = Receiver()
    project = tmp_path / "ratchet.yaml"

    def configure(approval: str, timeout_s: int, on_release: str) -> None:
        project.write_text(yaml.safe_dump({
            "release": {"approval": approval, "approval_timeout_s": timeout_s, "approval_poll_s": 1},
            "canary": {"on_release": on_release},
            "notify": {"webhook_url": receiver.url, "block": "ratchet-notify-stack"},
        }))

    def challenger() -> str:
        env = {**stack.env, "PREFECT_API_URL": api}
        r = subprocess.run([sys.executable, "-c", NEW_CHALLENGER, rule], env=env, cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout.strip().splitlines()[-1]

    def pending(version: str) -> dict:
        return stack.wait(f"v{version} waiting for approval", lambda: (
            p if (p := stack.ratchet("status")["pending_approval"]) and p["version"] == version else None),
            timeout=600, every=1.0)

    def settled(version: str, actions: set[str]) -> dict:
        return stack.wait(f"v{version}'s release to end in {actions}", lambda: next(
            (e for e in reversed(stack.ratchet("history")["entries"])
             if version in (e["to_version"], e["from_version"]) and e["action"] in actions), None),
            timeout=600, every=2.0)  # a canary's end goes from the challenger back to the champion

    configure("required", 600, "never")
    stack.env["RATCHET_CONFIG"] = os.pathsep.join([*CONFIG_FILES, str(project)])
    api = stack.ratchet("up", timeout=300)["prefect_api_url"]
    try:
        # a rejected batch (a column missing): the data.rejected message
        bad = tmp_path / "bad.csv"
        pd.read_csv(demo_data.clean[1]).drop(columns=[demo_data.target]).to_csv(bad, index=False)
        r = subprocess.run([str(BIN / "ratchet"), "ingest", str(bad), "--json"],
                           env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, (r.stdout, r.stderr[-2000:])

        # 1. `ratchet reject` keeps the champion
        c1 = challenger()
        waiting = pending(c1)
        assert waiting["reason"] == "gate passed" and waiting["flow_run_url"], waiting
        stack.ratchet("reject", "--comment", "not before the audit", "--who", "bob")
        rejected = settled(c1, {"rejected"})
        assert (rejected["evidence"]["who"], rejected["evidence"]["comment"]) == ("bob", "not before the audit")
        status = stack.ratchet("status")
        assert status["champion"] == champion and status["pending_approval"] is None, status

        # 2. no answer within release.approval_timeout_s keeps it too, and says so
        configure("required", 5, "never")
        c2 = challenger()
        timed_out = settled(c2, {"approval_timeout", "rejected", "approved", "promote"})
        assert timed_out["action"] == "approval_timeout" and "kept" in timed_out["evidence"]["summary"], timed_out
        status = stack.ratchet("status")
        assert status["champion"] == champion and status["pending_approval"] is None, status

        # 3. `ratchet approve --comment` promotes it; the history says who and why
        configure("required", 600, "never")
        c3 = challenger()
        pending(c3)
        approved = stack.ratchet("approve", "--comment", "offline evidence is clear")
        assert approved["decision"] == "approved" and approved["version"] == c3, approved
        promoted = settled(c3, {"promote"})
        history = stack.ratchet("history")["entries"]
        decision = next(e for e in reversed(history) if e["action"] == "approved" and e["to_version"] == c3)
        assert (decision["evidence"]["who"], decision["evidence"]["comment"]) == (getpass.getuser(),
                                                                                  "offline evidence is clear")
        assert promoted["evidence"]["approval"]["comment"] == "offline evidence is clear", promoted
        assert stack.ratchet("status")["champion"] == c3

        # the emergency rollback (the rolled_back message), then 4. no traffic: inconclusive
        assert stack.ratchet("rollback")["champion"] == champion
        configure("auto", 600, "always")
        c4 = challenger()
        ended = settled(c4, {"inconclusive", "rollback", "promote"})
        assert ended["action"] == "inconclusive", ended
        status = stack.ratchet("status")
        assert (status["champion"], status["challenger"]) == (champion, c4), status
        assert status["traffic"]["challenger_share"] == 0.0, status

        # a failed ratchet flow run
        r = subprocess.run([str(BIN / "ratchet"), "score",
                            str(tmp_path / "missing.csv"), "--json"],
                           env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 1, (r.stdout, r.stderr[-2000:])

        # the webhook's messages, posted by the stack's automations
        data = receiver.wait_for("ratchet.data.rejected", timeout=120)
        assert data["reason"] and data["branch"], data
        up = receiver.wait_for("ratchet.model.promoted", timeout=120)
        assert (up["champion"], up["model"]) == (c3, status["model"]) and up["flow_run_url"], up
        back = receiver.wait_for("ratchet.model.rolled_back", timeout=120)
        assert back["champion"] == champion, back
        quiet = receiver.wait_for("ratchet.model.canary_inconclusive", timeout=120)
        assert quiet["challenger"] == c4, quiet
        # (the rejected batch's ingest run failed too, and was announced as such)
        failed = receiver.wait_for("prefect.flow-run.Failed", timeout=120, flow="score")
        assert "no such file" in (failed["reason"] or ""), failed
        asked = [b for b in receiver.bodies if b.get("notification") == "ratchet.model.approval_requested"]
        assert {c1, c2, c3} <= {b["challenger"] for b in asked}, receiver.bodies
        # each signed with the stack's Secret block (made by `ratchet up`), as the documented receiver checks
        r = subprocess.run([sys.executable, "-c", "from prefect.blocks.system import Secret; "
                            "print(Secret.load('ratchet-notify-secret').get())"],
                           env={**stack.env, "PREFECT_API_URL": api}, cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        secret = r.stdout.strip().splitlines()[-1]
        assert all(verify(b["raw"], b["signature"], secret) for b in receiver.bodies), receiver.bodies
    finally:
        stack.ratchet("down", timeout=120)
        receiver.server.shutdown()
