"""Secrets kept in Prefect Secret blocks (a webhook's URL, the service's admin token)."""

from __future__ import annotations

from ratchet.delivery import service
from ratchet.runtime.context import Context
from ratchet.runtime.stack import read_admin_token


def secret_block(name: str) -> str | None:
    """The value of the Prefect Secret block ``name``; None when there is no such block."""
    from prefect.blocks.system import Secret

    try:
        return str(Secret.load(name).get())
    except ValueError:  # no such block
        return None


def ensure_secret_block(name: str) -> None:
    """The Secret block ``name``, made with a random value when absent (read it with
    ``Secret.load(name).get()`` for a webhook receiver, or save your own value first)."""
    import secrets

    from prefect.blocks.system import Secret

    try:
        Secret.load(name)
    except ValueError:
        Secret(value=secrets.token_urlsafe(32)).save(name)


def admin_token(ctx: Context) -> str | None:
    """The inference service's admin token: ``RATCHET_ADMIN_TOKEN``, else the Secret block named by
    ``canary.admin_token_block``, else the running stack's token file."""
    return service.resolve_admin_token(
        lambda: secret_block(ctx.cfg.canary.admin_token_block), lambda: read_admin_token(ctx.settings)
    )
