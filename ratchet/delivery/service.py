"""Where the canary finds the inference service, the admin token it presents there, and
whether a service is ready for it.

Both are fallback chains. The links outside this package (the running stack's files, a
Prefect Secret block) come in as callables, so the core imports neither the runtime nor
Prefect, and a link is only looked up when the ones before it gave nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from ratchet.core.config import RatchetConfig
from ratchet.delivery.admin import AdminClient, CanaryError

log = logging.getLogger(__name__)

SERVICE_URL_ENV = "RATCHET_SERVICE_URL"
ADMIN_TOKEN_ENV = "RATCHET_ADMIN_TOKEN"


def resolve_service_url(
    cfg: RatchetConfig, url: str | None = None, running_stack: Callable[[], dict[str, Any] | None] | None = None
) -> str:
    """``url``, else ``RATCHET_SERVICE_URL`` (set for workers on a cluster), else
    ``canary.service_url``, else the URL in ``running_stack()`` (the stack ``ratchet up``
    started, None when none runs), else serving host:port."""
    if url:
        return url
    if os.environ.get(SERVICE_URL_ENV):
        return os.environ[SERVICE_URL_ENV]
    if cfg.canary.service_url:
        return cfg.canary.service_url
    stack = running_stack() if running_stack is not None else None
    if stack and stack.get("service_url"):
        return str(stack["service_url"])
    return f"http://{cfg.serving.host}:{cfg.serving.port}"


def resolve_admin_token(
    secret_block: Callable[[], str | None], generated: Callable[[], str | None]
) -> str | None:
    """``RATCHET_ADMIN_TOKEN``, else ``secret_block()`` (the Prefect Secret block named by
    ``canary.admin_token_block``; None when there is no such block), else ``generated()`` (the
    token ``ratchet up`` generated for its service), else None (an open service)."""
    token = os.environ.get(ADMIN_TOKEN_ENV)
    if token:
        return token
    secret = secret_block()
    if secret is not None:
        return secret
    return generated()


def not_ready(url: str, timeout: float) -> str | None:
    """None when the service at ``url`` is ready (a champion loaded); else why it is not."""
    admin = AdminClient(url, None, timeout)
    try:
        health = admin.health()
    except CanaryError as e:
        health = {"error": str(e)}
    finally:
        admin.close()
    if health.get("ready"):
        return None
    return health.get("error") or "it has no champion loaded"


def service_for_release(
    cfg: RatchetConfig,
    url: str | None = None,
    running_stack: Callable[[], dict[str, Any] | None] | None = None,
    say: Callable[[str], None] = log.info,
) -> str | None:
    """The URL of a ready inference service for a release's canary, or None to promote directly
    (``canary.on_release``: ``never``; ``auto`` and no service ready, which ``say`` tells).
    Raises ``CanaryError`` under ``always`` when no service is ready."""
    mode = cfg.canary.on_release
    if mode == "never":
        return None
    url = resolve_service_url(cfg, url, running_stack)
    why = not_ready(url, min(5.0, cfg.canary.request_timeout_s))
    if why is None:
        return url
    if mode == "always":
        raise CanaryError(f"canary.on_release is 'always' but no service is ready at {url}: {why}")
    say(f"no inference service ready at {url} ({why}): promoting without a canary")
    return None


def connect(url: str, token: str | None, timeout: float) -> AdminClient:
    """A client of the service at ``url``; ``CanaryError`` when it has no champion loaded yet."""
    admin = AdminClient(url, token, timeout)
    try:
        if not admin.health().get("ready"):
            raise CanaryError(f"the service at {admin.url} has no champion loaded yet")
    except CanaryError:
        admin.close()
        raise
    return admin
