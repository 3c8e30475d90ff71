"""Announcements of a release's and a canary's outcome, as Prefect events (the notification
automations in ``deployments/notifications.py`` turn them into webhook messages), and the
signed post of one message (the ``notify`` flow)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.events import emit_event
from prefect.runtime import flow_run

from ratchet.core.config import NotifyConfig
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


@task(retries=3, retry_delay_seconds=[2, 10, 30])
def send_signed_message(cfg: NotifyConfig, body: str) -> int:
    """``body`` to the Webhook block's URL (its flow run's link added), signed with the Secret
    block's value (never unsigned)."""
    from prefect.blocks.system import Secret
    from prefect.blocks.webhook import Webhook
    from prefect.utilities.urls import url_for

    hook = Webhook.load(cfg.block)
    body = notify.with_flow_run_link(body, lambda run_id: url_for("flow-run", obj_id=run_id))
    return notify.post_signed(hook.url.get_secret_value(), body, Secret.load(cfg.secret_block).get(),
                              method=hook.method, headers=hook.headers.get_secret_value())
