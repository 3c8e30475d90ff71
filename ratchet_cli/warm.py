"""Warm commands: a command that runs a flow runs in a fork of a process that has imported
everything already.

On two cores a fresh interpreter spends most of a ``ratchet ingest`` or ``ratchet train``
importing Prefect, pandas, whylogs, torch, Lightning and MLflow (2-10 s), before any work.
So beside the home's persistent Prefect server (``ratchet_cli.server``) the first command
that needs Prefect also starts ``python -m ratchet_cli.warm_process <home>`` in the background: it
imports those once, then listens on ``<home>/run/warm.sock``. A later command sends it its
arguments, working folder and environment, and hands over its stdin, stdout and stderr
(``SCM_RIGHTS``); the warm process forks, and the child runs the command exactly as the
command would have run itself (the same ``main``, the same flow run in the same Prefect
history), writing straight to the caller's terminal, then sends back its exit code. Ctrl-C
in the caller reaches the child. Why not Prefect's or multiprocessing's own: they run a
function in a subprocess of their caller; this serves commands from other processes.

Nothing depends on it: with no warm process, one still preloading, one whose project code
changed on disk since it started (it refuses and exits, so an edited file is never served
stale), another Python, or ``RATCHET_WARM=0``, the command runs in its own process as
before. ``ratchet down`` stops it, and it stops by itself after ``RATCHET_IDLE_TIMEOUT``
without a command (``ratchet_cli.idle``); a dead one is replaced by the next command that starts
the server or finds it. Only the standard library at module level: ``forward`` runs before
any heavy import.

This module is the callers' side (forward a command, start, find or stop the process);
``ratchet_cli.warm_process`` is the process itself. Split so that the command line's modules
import in one direction: the process runs ``ratchet_cli.main``, which imports this side.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from ratchet.core.files import proc_start
from ratchet.core.settings import Settings
from ratchet.runtime.stack import alive

WARM_ENV = "RATCHET_WARM"  # "0": never; "child": this process is a warm child (never forwards again)
PROJECT = ("ratchet", "ratchet_cli", "flows", "tasks", "deployments")
HEADER = struct.Struct("!I")


def disabled() -> bool:
    return os.environ.get(WARM_ENV, "").strip().lower() in ("0", "false", "no", "child")


def record_file(settings: Settings) -> Path:
    return settings.root / "run" / "warm.json"


def socket_path(settings: Settings) -> Path:
    """``<home>/run/warm.sock``, or one in the temporary folder named by the home's hash when
    that path is longer than a Unix socket's name may be."""
    path = settings.root / "run" / "warm.sock"
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha256(str(settings.root.resolve()).encode()).hexdigest()[:16]
    return Path("/tmp") / f"ratchet-warm-{digest}.sock"


def read_record(settings: Settings) -> dict[str, Any] | None:
    try:
        record = json.loads(record_file(settings).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return record if _ours(record) else None


def _ours(record: dict[str, Any]) -> bool:
    return alive(record["pid"]) and proc_start(record["pid"]) in (None, record.get("proc_start"))


# ------------------------------------------------------------------ the caller's side
def forward(settings: Settings, argv: list[str] | None) -> int | None:
    """Run the command ``argv`` in a fork of the home's warm process; its exit code, or None
    when no warm process takes it (then the caller runs it itself)."""
    if argv is None or disabled() or sys.platform != "linux":
        return None
    record = read_record(settings)
    if record is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(2.0)
        sock.connect(record["socket"])
        body = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                           "executable": sys.executable}).encode()
        socket.send_fds(sock, [HEADER.pack(len(body)) + body], [0, 1, 2])
        reply = sock.makefile("rb")
        first = json.loads(reply.readline() or b"{}")
    except (OSError, ValueError):
        sock.close()
        return None
    if "pid" not in first:  # refused: stale code, another Python
        sock.close()
        return None
    return _wait_for_child(sock, reply, int(first["pid"]))


def _wait_for_child(sock: socket.socket, reply, pid: int) -> int:
    def relay(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    previous = {s: signal.signal(s, relay) for s in (signal.SIGINT, signal.SIGTERM)}
    sock.settimeout(None)
    try:
        while True:
            try:
                line = reply.readline()
            except InterruptedError:
                continue
            if not line:
                sys.stderr.write("ratchet: the warm process's child ended without an exit code\n")
                return 1
            message = json.loads(line)
            if "exit" in message:
                return int(message["exit"])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()


def ensure_started(settings: Settings) -> None:
    """Start the home's warm process in the background unless one runs; returns at once (it
    takes commands once it has imported everything)."""
    if disabled() or sys.platform != "linux" or read_record(settings) is not None:
        return
    from ratchet_cli.server import spawn

    env = {**os.environ, WARM_ENV: "1"}
    proc = spawn([sys.executable, "-m", "ratchet_cli.warm_process", str(settings.root)], env, settings.root / "logs" / "warm.log")
    record = {"pid": proc.pid, "proc_start": proc_start(proc.pid), "socket": str(socket_path(settings)),
              "started_at": time.time()}
    path = record_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def stop(settings: Settings) -> bool:
    """Stop the home's warm process (its children finish their commands); True when one ran."""
    record = read_record(settings)
    stopped = False
    if record is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(record["pid"], signal.SIGTERM)
            stopped = True
    record_file(settings).unlink(missing_ok=True)
    return stopped
