"""One webhook message, signed: what the notification automations run (``notify/webhook``,
``deployments/notifications.py``) with the message they rendered from the event."""

from __future__ import annotations

from prefect import flow

from ratchet.core.config import load_config
from ratchet.runtime.options import RunOptions
from tasks.notify import send_signed_message


@flow(name="notify")
def notify_flow(body: str, options: RunOptions = RunOptions()) -> int:
    """Post ``body`` to the webhook with its ``X-Ratchet-Signature-256``; the receiver's status.

    Args:
        body: the JSON message, sent byte for byte as signed
        options: config files and overrides (left at the default by the deployment)
    """
    return send_signed_message(load_config(options.config_files, options.overrides).notify, body)
