"""The files a running local stack leaves in the home, read by anyone who needs it.

``<home>/run/stack.json`` records the process ids and URLs of what ``ratchet up`` started
(a Prefect server, a runner serving the deployments, the inference service; see
``ratchet_cli.stack``); ``<home>/run/admin-token`` the service's admin token. Commands and
tasks read them to talk to the running server and service.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ratchet.core.settings import Settings


def stack_file(settings: Settings) -> Path:
    return settings.root / "run" / "stack.json"


def read_stack(settings: Settings) -> dict[str, Any] | None:
    """The running stack, or None when nothing runs (stale files are ignored)."""
    path = stack_file(settings)
    if not path.exists():
        return None
    stack = json.loads(path.read_text())
    if not any(alive(p["pid"]) for p in stack["processes"].values()):
        return None
    return stack


def token_file(settings: Settings) -> Path:
    return settings.root / "run" / "admin-token"


def read_admin_token(settings: Settings) -> str | None:
    """The admin token ``up`` generated for its service (readable by its owner only), or None."""
    try:
        return token_file(settings).read_text().strip() or None
    except FileNotFoundError:
        return None


def prefect_api_url(settings: Settings) -> str | None:
    stack = read_stack(settings)
    return stack["prefect_api_url"] if stack else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
