"""Prefect events: what automations react to."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.events import emit_event


def emit_model_event(event: str, model: str, payload: dict[str, Any]) -> None:
    """Also used outside a flow run (the CLI's emergency rollback)."""
    emit_event(
        event=event,
        resource={"prefect.resource.id": f"ratchet.model.{model}", "ratchet.model": model},
        payload=payload,
    )


@task
def announce_model_event(event: str, model: str, payload: dict[str, Any]) -> None:
    """``ratchet.model.registered`` and friends, for the release automation."""
    emit_model_event(event, model, payload)
