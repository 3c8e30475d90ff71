"""Emitting ratchet's events to Prefect (names and resources: ``ratchet.core.events``)."""

from __future__ import annotations

from typing import Any

from ratchet.core.events import DATA_EVENTS, data_resource, model_resource


def emit_model_event(event: str, model: str, payload: dict[str, Any]) -> None:
    """An event about ``model`` (a flow's announcement, or the CLI's emergency rollback)."""
    from prefect.events import emit_event

    emit_event(event=event, resource=model_resource(model), payload=payload)


def emit_data_event(kind: str, repository: str, branch: str, commit: str, payload: dict[str, Any]) -> None:
    """``published``, ``rejected`` or ``duplicate``: a batch's fate, about the repository's branch and commit."""
    from prefect.events import emit_event

    emit_event(event=DATA_EVENTS[kind], resource=data_resource(repository, branch, commit), payload=payload)


def announce(model: str, found: tuple[str, dict[str, Any]] | None) -> str | None:
    """Emit ``found`` (an event's name and payload, or None for nothing to say); the name emitted."""
    if found is None:
        return None
    emit_model_event(found[0], model, found[1])
    return found[0]
