"""Notifications: Prefect automations run the notify/webhook deployment with JSON rendered from
ratchet's events and from a failed ratchet flow run; its flow runs post it, signed, to a real HTTP
receiver on 127.0.0.1, whose signature check is the documented one (docs/webhook_receiver.py).
Real Prefect (test harness: its triggers and actions services; the automations' flow runs are
run here as a runner would), a real HTTP server; nothing stands in."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ratchet.core.config import load_config
from ratchet.core.files import free_port
from ratchet.runtime.options import RunOptions
from tests.conftest import CONFIG_FILES, ROOT


def receiver_example():
    """docs/webhook_receiver.py, the receiver the README documents (a file, not a package)."""
    spec = importlib.util.spec_from_file_location("webhook_receiver", ROOT / "docs" / "webhook_receiver.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verify = receiver_example().verify


class Receiver:
    """An HTTP server collecting the JSON bodies POSTed to it."""

    def __init__(self):
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append({"content_type": self.headers.get("Content-Type"), **json.loads(data),
                                 "raw": data, "signature": self.headers.get("X-Ratchet-Signature-256")})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, notification: str, timeout: float = 90, poll=None, **fields) -> dict:
        """The first message ``notification`` (whose ``fields`` have the values given);
        ``poll()`` is called while waiting (to run the flow runs that send messages)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if poll is not None:
                poll()
            for body in self.bodies:
                if body.get("notification") == notification and all(body.get(k) == v for k, v in fields.items()):
                    return body
            time.sleep(0.3)
        raise AssertionError(f"no {notification} notification; got {self.bodies}")


NOTIFY = {"block": "ratchet-notify-test", "secret_block": "ratchet-notify-test-secret"}


@pytest.fixture
def receiver_and_automations():
    from deployments.notifications import apply_notifications

    receiver = Receiver()
    overrides = {"notify": {"webhook_url": receiver.url, **NOTIFY}}
    cfg = load_config([Path(f) for f in CONFIG_FILES], overrides=overrides)
    automations = apply_notifications(cfg)
    time.sleep(1.0)  # the triggers service loads new automations
    yield cfg, receiver, automations, overrides
    for a in automations:
        a.delete()
    receiver.server.shutdown()


class NotifyRuns:
    """Runs the flow runs the automations created for notify/webhook, as its runner would."""

    def __init__(self, overrides: dict):
        self.options, self.done = RunOptions(config_files=CONFIG_FILES, overrides=overrides), set()

    def __call__(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
        from prefect.flow_engine import run_flow

        from flows.notify import notify_flow

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["webhook"])))
        for run in runs:
            if run.id not in self.done and run.state.is_scheduled():
                self.done.add(run.id)
                assert isinstance(run.parameters["body"], str)  # the message as rendered, signed as is
                run_flow(notify_flow, flow_run=run, parameters={**run.parameters, "options": self.options})


def test_events_and_a_failed_flow_run_post_json_to_the_webhook(receiver_and_automations, tmp_path, home):
    from prefect import flow
    from prefect.blocks.system import Secret
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    from flows.score import score_flow
    from ratchet.delivery.approval import ApprovalRequest
    from ratchet.runtime.context import load_context
    from tasks.events import emit_model_event
    from tasks.notify import announce_approval_request

    cfg, receiver, automations, overrides = receiver_and_automations
    assert len(automations) == 8
    ctx = load_context(CONFIG_FILES, home=str(home))

    @flow(name="notify-probe")
    def probe() -> None:
        announce_approval_request(ctx, ApprovalRequest(cfg.model_name, "7", "6", time.time(), "gate passed",
                                                       "test", "fr-id", "http://ui/flow-runs/flow-run/fr-id"))

    probe()
    emit_event(event="ratchet.data.rejected",
               resource={"prefect.resource.id": "ratchet.data.ratchet", "ratchet.repository": "ratchet",
                         "ratchet.branch": "ingest/x", "ratchet.commit": "c0ffee"},
               payload={"reason": "3 rows out of range"})
    # what `ratchet rollback` sends: no challenger in its payload (the message says null)
    emit_model_event("ratchet.model.rolled_back", cfg.model_name, {"action": "rollback", "champion": "5",
                                                                  "previous": "6", "reason": "cli"})
    EventsWorker.drain_all()
    with pytest.raises(Exception, match="no such file"):
        score_flow(path=str(tmp_path / "missing.csv"), options=RunOptions(config_files=CONFIG_FILES, home=str(home)))

    send = NotifyRuns(overrides)
    asked = receiver.wait_for("ratchet.model.approval_requested", poll=send)
    assert asked["content_type"] == "application/json"
    assert (asked["model"], asked["champion"], asked["challenger"]) == (cfg.model_name, "6", "7")
    assert asked["reason"] == "gate passed" and asked["flow_run_url"] == "http://ui/flow-runs/flow-run/fr-id"
    rejected = receiver.wait_for("ratchet.data.rejected", poll=send)
    assert rejected["reason"] == "3 rows out of range" and rejected["commit"] == "c0ffee"
    back = receiver.wait_for("ratchet.model.rolled_back", poll=send)
    assert (back["champion"], back["challenger"], back["reason"]) == ("5", None, "cli"), back
    failed = receiver.wait_for("prefect.flow-run.Failed", poll=send)
    assert failed["flow"] == "score" and failed["model"] == cfg.model_name and failed["flow_run_id"]
    assert failed["flow_run_url"].endswith(f"/runs/flow-run/{failed['flow_run_id']}"), failed  # the link, added
    assert "no such file" in (failed["reason"] or "")
    # every message signed with the Secret block's value, as the documented receiver checks
    secret = Secret.load(NOTIFY["secret_block"]).get()
    assert all(verify(b["raw"], b["signature"], secret) for b in receiver.bodies), receiver.bodies
    assert not verify(asked["raw"], asked["signature"], secret + "x")
