"""What a release tells the world: the event its outcome announces (notification automations,
``deployments/notifications.py``, turn these into webhook posts).

Every event's payload names the model, the versions, the reason and the flow run's link.
"""

from __future__ import annotations

from typing import Any

from ratchet.core.events import (
    MODEL_APPROVAL_REQUESTED,
    MODEL_CANARY_INCONCLUSIVE,
    MODEL_KEPT,
    MODEL_PROMOTED,
    MODEL_ROLLED_BACK,
)

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
    evidence = result.get("evidence") or {}
    reason = gate_reasons if result["action"] in ("promote", "keep") else [f"approval: {result['action']}"]
    return event, message(model, result["action"], result.get("champion"), result.get("challenger")
                          or evidence.get("challenger"), reason, flow_run_url)


def canary_event(model: str, result: dict[str, Any], flow_run_url: str | None) -> tuple[str, dict] | None:
    event = CANARY_EVENTS.get(result.get("action"))
    if event is None:
        return None
    return event, message(model, result["action"], result.get("champion"), result.get("challenger"),
                          result.get("reason"), flow_run_url)


def approval_event(model: str, request: dict[str, Any]) -> tuple[str, dict]:
    return MODEL_APPROVAL_REQUESTED, message(model, "approval_requested", request.get("champion"), request.get("version"),
                                       request.get("reason"), request.get("flow_run_url"))
