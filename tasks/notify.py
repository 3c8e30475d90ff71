"""Announcements of a release's and a canary's outcome, as Prefect events (the notification
automations in ``deployments/notifications.py`` turn them into webhook messages), and the
signed post of one message (the ``notify`` flow)."""

from __future__ import annotations

from typing import Any

from prefect.runtime import flow_run

from ratchet.core.config import NotifyConfig
from ratchet.delivery import notify
from ratchet.runtime.context import Context
from ratchet_prefect import webhooks
from ratchet_prefect.events import announce
from ratchet_prefect.options import WEBHOOK, task


@task
def announce_release_outcome(ctx: Context, result: Any) -> str | None:
    """``ratchet.model.promoted`` or ``ratchet.model.kept`` (with why)."""
    return announce(ctx.cfg.model_name, notify.release_event(ctx.cfg.model_name, result.to_dict(),
                                                          result.evaluation.reasons, flow_run.ui_url))


@task
def announce_canary_outcome(ctx: Context, outcome: Any) -> str | None:
    """``ratchet.model.rolled_back`` or ``ratchet.model.canary_inconclusive``."""
    return announce(ctx.cfg.model_name, notify.canary_event(ctx.cfg.model_name, outcome.to_dict(), flow_run.ui_url))


@task
def announce_approval_request(ctx: Context, request: Any) -> str | None:
    return announce(ctx.cfg.model_name, notify.approval_event(ctx.cfg.model_name, request.to_dict()))


@task(**WEBHOOK)
def send_signed_message(cfg: NotifyConfig, body: str) -> int:
    """``body`` to the Webhook block's URL (its flow run's link added), signed with the Secret
    block's value (never unsigned); the receiver's status."""
    return webhooks.send_signed(cfg, body)
