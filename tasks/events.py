"""Prefect events: what automations react to."""

from __future__ import annotations

from typing import Any

from ratchet_prefect.events import emit_model_event
from ratchet_prefect.options import task


@task
def announce_model_event(event: str, model: str, payload: dict[str, Any]) -> None:
    """``ratchet.model.registered`` and friends (``ratchet.core.events``), for the automations."""
    emit_model_event(event, model, payload)
