"""Signed webhook messages: the Webhook block's URL, the Secret block's key (``notify`` config)."""

from __future__ import annotations

from ratchet.core.config import NotifyConfig
from ratchet.delivery import notify


def send_signed(cfg: NotifyConfig, body: str) -> int:
    """Post ``body`` (its flow run's link added) to the Webhook block's URL with
    ``X-Ratchet-Signature-256``, keyed by the Secret block ``cfg.secret_block``; the status."""
    from prefect.blocks.system import Secret
    from prefect.blocks.webhook import Webhook
    from prefect.utilities.urls import url_for

    hook = Webhook.load(cfg.block)
    body = notify.with_flow_run_link(body, lambda run_id: url_for("flow-run", obj_id=run_id))
    return notify.post_signed(hook.url.get_secret_value(), body, Secret.load(cfg.secret_block).get(),
                              method=hook.method, headers=hook.headers.get_secret_value())
