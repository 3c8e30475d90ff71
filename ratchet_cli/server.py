"""One Prefect server per home, started on first need and reused by the commands after it.

A command that runs a flow needs a Prefect API. Prefect's own answer without one is a
temporary server per process (7-15 s on two cores, most of a command's time); here the first
command that needs Prefect starts ``prefect server start`` in the background instead (its
database in ``<home>/prefect``, the one ``ratchet up``'s server and the temporary servers use,
so every run stays in the same history), records it in ``<home>/run/prefect-server.json``
and leaves it running; later commands, and ``ratchet up``, reuse it. ``ratchet down`` stops it.
A record whose process is gone, is another process now, or does not answer ``/api/health``
is replaced (on the same port when it is free). It stops by itself after
``RATCHET_IDLE_TIMEOUT`` without a command (``ratchet_cli.idle`` runs it and watches).

Not for everyone: a ``PREFECT_API_URL`` already set (by the user, a worker, or Prefect's test
harness in this process) is used as it is, the ``cluster`` profile always names its server,
and ``RATCHET_PREFECT_SERVER=ephemeral`` keeps Prefect's temporary server per command (what
the test suite sets, so it leaves no server behind) while still using a running one.

Only the standard library here: ``ratchet status`` and friends import this module cheaply.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ratchet.core.files import free_port, is_loopback, proc_start
from ratchet.core.settings import SERVER_AUTH_ENV, Settings
from ratchet.runtime.stack import alive, prefect_api_url, read_server_record, server_file
from ratchet_cli import idle

MODE_ENV = "RATCHET_PREFECT_SERVER"
MODES = ("persistent", "ephemeral")


def mode() -> str:
    """``persistent`` (default): start and reuse the home's server; ``ephemeral``: Prefect's
    temporary server per command unless one already runs for the home."""
    value = os.environ.get(MODE_ENV, "").strip().lower() or "persistent"
    if value not in MODES:
        raise ValueError(f"{MODE_ENV}={value!r}: expected one of {', '.join(MODES)}")
    return value


def healthy(api_url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as r:  # noqa: S310 - our own URL
            return r.status == 200
    except (OSError, ValueError):  # refused, reset, timed out, HTTP error
        return False


def running_api_url(settings: Settings) -> str | None:
    """The API of the server running for this home (the stack's or the persistent one) when
    it answers; never starts one."""
    url = prefect_api_url(settings)
    return url if url and healthy(url) else None


def connect(settings: Settings) -> str | None:
    """The Prefect API this command should use, when the environment names none: a running
    server of the home, else (``persistent``) one started now; None means Prefect's temporary
    server (``ephemeral``, nothing running)."""
    if settings.is_cluster:
        return None  # its PREFECT_API_URL is required (Settings.prefect_env)
    if mode() == "ephemeral":
        return running_api_url(settings)
    return ensure(settings)["api_url"]


def ensure(settings: Settings, *, port: int | None = None, timeout: float = 180.0) -> dict[str, Any]:
    """The home's server record, starting the server when none answers. Serialized by a lock
    in the home, so two commands started together start one server."""
    with _lock(settings):
        record = read_server_record(settings)
        if record and _ours(record):
            if _answers(record["api_url"], record["pid"]):
                return record
            stop_group(record["pid"])  # alive but deaf: hung, or stuck starting
        port = port or _reusable_port(record) or free_port()
        return _start(settings, port, timeout)


def stop(settings: Settings) -> bool:
    """Stop the home's server; True when one was running."""
    record = read_server_record(settings)
    stopped = bool(record and _ours(record) and stop_group(record["pid"]))
    server_file(settings).unlink(missing_ok=True)
    return stopped


# ------------------------------------------------------------------ processes
def spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab")  # noqa: SIM115 - the child keeps it
    # a new session, so the process outlives this command and `down` can stop its group
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_group(pid: int, grace: float = 20.0) -> bool:
    """Stop the process group ``pid`` leads: the member and its children (a runner's flow runs,
    the server's uvicorn), even when the leader itself is already gone."""
    leader = alive(pid)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    except PermissionError:  # the id now belongs to someone else's group
        return False
    if not leader:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.2)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)
    return True


def server_env(settings: Settings, api: str | None = None) -> dict[str, str]:
    """The server's environment: Prefect's settings for the home (its database there), no
    API URL of its own to point at; its dashboard calls ``api``, the port it got (else the
    page says "Can't connect to Server API": its default is port 4200)."""
    env = {**os.environ, **settings.prefect_env(), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    if api:
        env["PREFECT_SERVER_UI_API_URL"] = api
    return env


class ExposedServerError(ValueError):
    """A Prefect server about to listen on a network address without authentication (a
    ValueError: the user's setting, told in one line)."""


def bind_host(settings: Settings) -> str:
    """Where the server listens: loopback unless ``RATCHET_PREFECT_HOST`` names another address,
    which needs ``PREFECT_SERVER_API_AUTH_STRING`` (Prefect's basic auth; without it the whole
    orchestration, blocks and automations included, would be open to the network)."""
    host = settings.prefect_host
    if not is_loopback(host) and not os.environ.get(SERVER_AUTH_ENV):
        raise ExposedServerError(
            f"RATCHET_PREFECT_HOST={host} exposes the Prefect server without authentication: "
            f"set {SERVER_AUTH_ENV}=user:password, or leave it on 127.0.0.1 (an SSH tunnel reaches it)"
        )
    return host


def _start(settings: Settings, port: int, timeout: float) -> dict[str, Any]:
    log = settings.root / "logs" / "prefect-server.log"
    host = bind_host(settings)
    ui = settings.prefect_ui
    cmd = [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", host,
           "--port", str(port), "--ui" if ui else "--no-ui", "--analytics-off"]
    # its clients on this machine (and the dashboard's API URL): loopback when it listens on every address
    client = "127.0.0.1" if host in ("0.0.0.0", "::", "") else f"[{host}]" if ":" in host else host
    api = f"http://{client}:{port}/api"
    proc = spawn(idle.wrap(settings.root, cmd), server_env(settings, api), log)  # stops when idle
    deadline = time.monotonic() + timeout
    try:
        while not healthy(api, timeout=2.0):
            if proc.poll() is not None:
                raise RuntimeError(f"the Prefect server exited with code {proc.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server did not answer {api}/health within {timeout:.0f} s; see {log}")
            time.sleep(0.1)
    except BaseException:
        stop_group(proc.pid, grace=5.0)
        raise
    record = {"pid": proc.pid, "api_url": api, "port": port, "log": str(log), "started_at": time.time(),
              "proc_start": proc_start(proc.pid), "ui_url": f"http://127.0.0.1:{port}/" if ui else None}
    path = server_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
    return record


def _answers(api_url: str, pid: int, patience: float = 10.0) -> bool:
    """Health within ``patience`` seconds (a busy two-core machine can be slow to answer)."""
    deadline = time.monotonic() + patience
    while alive(pid):
        if healthy(api_url):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return False


def _ours(record: dict[str, Any]) -> bool:
    """The recorded process is alive and still the one we started (a process id can be reused)."""
    if not alive(record["pid"]):
        return False
    started = record.get("proc_start")
    return started is None or proc_start(record["pid"]) in (None, started)


def _reusable_port(record: dict[str, Any] | None) -> int | None:
    """The port of the server being replaced, when free: anything holding its URL (a runner
    of the stack) finds the new one there."""
    if not record:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", int(record["port"])))
        except OSError:
            return None
    return int(record["port"])


@contextlib.contextmanager
def _lock(settings: Settings) -> Iterator[None]:
    path = settings.root / "run" / "prefect-server.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock, one user at a time
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
