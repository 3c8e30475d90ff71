"""The files a running local stack leaves in the home, read by anyone who needs it.

``<home>/run/stack.json`` records the process ids and URLs of what ``ratchet up`` started
(a Prefect server, the supervisor of a runner serving the deployments, the inference service;
see ``ratchet_cli.stack``); ``<home>/run/runner.json`` the runner the supervisor runs now;
``<home>/run/prefect-server.json`` the home's one Prefect server
(started by ``up`` or by the first command that needs Prefect, reused by the next ones;
see ``ratchet_cli.server``); ``<home>/run/admin-token`` the service's admin token. Commands and
tasks read them to talk to the running server and service.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from ratchet.core.files import (
    alive,  # noqa: F401 - where the stack's readers find it
    write_private_once,
)
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


def runner_file(settings: Settings) -> Path:
    """Written by the runner's supervisor (``ratchet_cli.supervise``): the runner's current
    process id, how often it was started again, and how the last one ended."""
    return settings.root / "run" / "runner.json"


def read_runner(settings: Settings) -> dict[str, Any] | None:
    """The supervised runner as last recorded, with ``alive`` (its process lives), or None."""
    try:
        record = json.loads(runner_file(settings).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return {**record, "alive": alive(record["pid"])}


def token_file(settings: Settings) -> Path:
    return settings.root / "run" / "admin-token"


def read_admin_token(settings: Settings) -> str | None:
    """The admin token ``up`` generated for its service (readable by its owner only), or None."""
    try:
        return token_file(settings).read_text().strip() or None
    except FileNotFoundError:
        return None


def admin_token(settings: Settings) -> str:
    """``RATCHET_ADMIN_TOKEN`` when set; else the home's token, made on first use (0600, see
    ``token_file``): what ``ratchet up`` and ``ratchet serve`` give the service, and what the
    canary finds, so the service's admin routes are never open."""
    token = os.environ.get("RATCHET_ADMIN_TOKEN") or read_admin_token(settings)
    if token:
        return token
    return write_private_once(token_file(settings), secrets.token_urlsafe(32)).strip()


def server_file(settings: Settings) -> Path:
    return settings.root / "run" / "prefect-server.json"


def read_server_record(settings: Settings) -> dict[str, Any] | None:
    """The home's Prefect server as recorded (``pid``, ``api_url``, ``port``, ``log``), alive or not."""
    try:
        return json.loads(server_file(settings).read_text())
    except (FileNotFoundError, ValueError):
        return None


def read_server(settings: Settings) -> dict[str, Any] | None:
    """The home's Prefect server when its process lives (whether it answers is the caller's
    question), else None."""
    record = read_server_record(settings)
    return record if record and alive(record["pid"]) else None


def dashboard_url(settings: Settings) -> str | None:
    """The Prefect UI of the home's running server, when it serves one (not asked whether it answers)."""
    server = read_server(settings)
    return server.get("ui_url") if server else None


def prefect_api_url(settings: Settings) -> str | None:
    """The API of the Prefect server running for this home: the stack's, else the one the
    first command that needed Prefect started (process alive; not asked whether it answers)."""
    stack = read_stack(settings)
    if stack:
        return stack["prefect_api_url"]
    server = read_server(settings)
    return server["api_url"] if server else None

