"""What a release tells the world: the event its outcome announces (notification automations,
``deployments/notifications.py``, turn these into webhook posts).

Every event's payload names the model, the versions, the reason and the flow run's link.
"""

from __future__ import annotations

from typing import Any

# a release's final action -> the event announcing it (a canary's own ends are announced by it)
RELEASE_EVENTS = {
    "promote": "ratchet.model.promoted",
    "keep": "ratchet.model.kept",
    "rejected": "ratchet.model.kept",
    "approval_timeout": "ratchet.model.kept",
    "approval_superseded": "ratchet.model.kept",
}
CANARY_EVENTS = {"rollback": "ratchet.model.rolled_back", "inconclusive": "ratchet.model.canary_inconclusive"}
APPROVAL_REQUESTED = "ratchet.model.approval_requested"


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
    return APPROVAL_REQUESTED, message(model, "approval_requested", request.get("champion"), request.get("version"),
                                       request.get("reason"), request.get("flow_run_url"))
