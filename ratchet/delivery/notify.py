"""What a release tells the world: the event its outcome announces (notification automations,
``deployments/notifications.py``, turn these into webhook posts), and how a message is posted:
signed, so that its receiver can tell it came from ratchet.

Every event's payload names the model, the versions, the reason and the flow run's link.
The signature is GitHub's scheme for webhooks: ``X-Ratchet-Signature-256: sha256=<hex>``, the
HMAC-SHA256 of the body's bytes keyed by a shared secret (a Prefect Secret block); a receiver
computes the same and compares in constant time (``docs/webhook_receiver.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from ratchet.core.events import (
    MODEL_APPROVAL_REQUESTED,
    MODEL_CANARY_INCONCLUSIVE,
    MODEL_KEPT,
    MODEL_PROMOTED,
    MODEL_ROLLED_BACK,
)

SIGNATURE_HEADER = "X-Ratchet-Signature-256"

# a release's final action -> the event announcing it (a canary's own ends are announced by it)
RELEASE_EVENTS = {
    "promote": MODEL_PROMOTED,
    "keep": MODEL_KEPT,
    "rejected": MODEL_KEPT,
    "approval_timeout": MODEL_KEPT,
    "approval_superseded": MODEL_KEPT,
}
CANARY_EVENTS = {"rollback": MODEL_ROLLED_BACK, "inconclusive": MODEL_CANARY_INCONCLUSIVE}


def message(model: str, action: str, champion: str | None, challenger: str | None, reason: Any,
            flow_run_url: str | None) -> dict[str, Any]:
    reasons = reason if isinstance(reason, list) else [str(reason)] if reason else []
    return {"model": model, "action": action, "champion": champion, "challenger": challenger,
            "reason": "; ".join(str(r) for r in reasons), "flow_run_url": flow_run_url}


def release_event(model: str, result: dict[str, Any], gate_reasons: list[str], flow_run_url: str | None
                  ) -> tuple[str, dict] | None:
    """The event for a release's ``PromotionResult.to_dict()``, None when nothing is to say
    (a no-op, or a canary end the canary flow announced). The reason: the gate's, or (kept by
    a person or the approval's timeout) the decision."""
    event = RELEASE_EVENTS.get(result.get("action"))
    if event is None:
        return None
    reason = gate_reasons if result["action"] in ("promote", "keep") else [f"approval: {result['action']}"]
    return event, message(model, result["action"], result.get("champion"), result.get("challenger"), reason,
                          flow_run_url)


def canary_event(model: str, result: dict[str, Any], flow_run_url: str | None) -> tuple[str, dict] | None:
    event = CANARY_EVENTS.get(result.get("action"))
    if event is None:
        return None
    return event, message(model, result["action"], result.get("champion"), result.get("challenger"),
                          result.get("reason"), flow_run_url)


def approval_event(model: str, request: dict[str, Any]) -> tuple[str, dict]:
    return MODEL_APPROVAL_REQUESTED, message(model, "approval_requested", request.get("champion"), request.get("version"),
                                       request.get("reason"), request.get("flow_run_url"))


def with_flow_run_link(body: str, flow_run_url: Callable[[str], str | None]) -> str:
    """The message with ``flow_run_url`` made from its ``flow_run_id`` when it has none (the
    automation could not render it); ``body`` itself when there is nothing to add."""
    message = json.loads(body)
    if not isinstance(message, dict) or message.get("flow_run_url") or not message.get("flow_run_id"):
        return body
    return json.dumps({**message, "flow_run_url": flow_run_url(str(message["flow_run_id"]))}, indent=2)


def signature(body: bytes, secret: str) -> str:
    """The value of ``X-Ratchet-Signature-256`` for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_signed(url: str, body: str, secret: str, *, method: str = "POST", headers: dict[str, str] | None = None,
                timeout: float = 10.0) -> int:
    """Send ``body`` (JSON text, sent byte for byte as signed) with its signature; the receiver's
    status code, an ``httpx.HTTPStatusError`` when it is not 2xx."""
    import httpx

    if not secret:
        raise ValueError("no webhook signing secret: messages are never sent unsigned")
    data = body.encode()
    sent = {**(headers or {}), "Content-Type": "application/json", SIGNATURE_HEADER: signature(data, secret)}
    response = httpx.request(method, url, content=data, headers=sent, timeout=timeout)
    response.raise_for_status()
    return response.status_code
