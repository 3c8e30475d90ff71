"""Announcements of a release's and a canary's outcome, as Prefect events (the notification
automations in ``deployments/notifications.py`` post them to the webhook)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.events import emit_event
from prefect.runtime import flow_run

from ratchet.delivery import notify
from ratchet.runtime.context import Context


def _emit(ctx: Context, found: tuple[str, dict[str, Any]] | None) -> str | None:
    if found is None:
        return None
    model = ctx.cfg.model_name
    emit_event(event=found[0], resource={"prefect.resource.id": f"ratchet.model.{model}", "ratchet.model": model},
               payload=found[1])
    return found[0]


@task
def announce_release_outcome(ctx: Context, result: Any) -> str | None:
    """``ratchet.model.promoted`` or ``ratchet.model.kept`` (with why)."""
    return _emit(ctx, notify.release_event(ctx.cfg.model_name, result.to_dict(), result.evaluation.reasons,
                                                   flow_run.ui_url))


@task
def announce_canary_outcome(ctx: Context, outcome: Any) -> str | None:
    """``ratchet.model.rolled_back`` or ``ratchet.model.canary_inconclusive``."""
    return _emit(ctx, notify.canary_event(ctx.cfg.model_name, outcome.to_dict(), flow_run.ui_url))


@task
def announce_approval_request(ctx: Context, request: Any) -> str | None:
    return _emit(ctx, notify.approval_event(ctx.cfg.model_name, request.to_dict()))
