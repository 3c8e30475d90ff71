"""The warm process itself (``python -m ratchet_cli.warm_process <home>``): imports the
command line, the flows and their libraries once, then forks a child per command that
``ratchet_cli.warm.forward`` sends it (see ``ratchet_cli.warm`` for why and how)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ratchet.core.imports import PRELOAD, warm_preload
from ratchet.core.settings import Settings
from ratchet_cli import idle
from ratchet_cli.warm import HEADER, PROJECT, WARM_ENV, record_file, socket_path

# the command line first: a command's own module is what every child runs
COMMAND_PRELOAD = ("ratchet_cli.main", *PRELOAD)


def serve(home: str) -> None:
    """Import everything, then fork a child per command received."""
    settings = Settings(home=home)
    limit = idle.timeout()
    idle.announce(settings.root, limit)
    t0 = time.monotonic()
    for name in warm_preload(COMMAND_PRELOAD):
        with contextlib.suppress(ImportError):
            __import__(name)
    with contextlib.suppress(Exception):  # MLflow's schema check reads its migration scripts (0.4 s) on first use
        from mlflow.store.db.utils import _get_latest_schema_revision

        _get_latest_schema_revision()
    loaded_at = time.time()
    path = Path(socket_path(settings))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o600)
    server.listen(16)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: (path.unlink(missing_ok=True), os._exit(0)))
    server.settimeout(idle.poll_interval(limit))  # accept() wakes up to check for idleness
    _log(f"ready in {time.monotonic() - t0:.1f} s, pid {os.getpid()}, {path}, idle timeout {limit:g} s")
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            if idle.expired(settings.root, loaded_at, limit):
                _stop_idle(settings, path, limit)
            continue
        conn.settimeout(None)
        try:
            request, fds = _receive(conn)
        except (OSError, ValueError) as e:
            _log(f"bad request: {e}")
            conn.close()
            continue
        refusal = _refusal(request, loaded_at)
        if refusal:
            _log(f"refused {request.get('argv')}: {refusal}")
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"refused": refusal}).encode() + b"\n")
            conn.close()
            for fd in fds:
                os.close(fd)
            if refusal.startswith("project code changed"):
                path.unlink(missing_ok=True)
                record_file(settings).unlink(missing_ok=True)
                os._exit(0)  # the next command that needs Prefect starts a fresh one
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            server.close()
            _child(conn, request, fds)
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        conn.close()
        _log(f"pid {pid}: ratchet {' '.join(request['argv'])}")


def _stop_idle(settings: Settings, path: Path, limit: float) -> None:
    """No command for ``limit`` seconds: go, as when the code changed (the next command that
    needs Prefect starts a fresh one). A command connecting meanwhile gets no reply and runs
    itself."""
    _log(f"idle for {limit:g} s: stopping")
    path.unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError, ValueError):
        if json.loads(record_file(settings).read_text())["pid"] == os.getpid():
            record_file(settings).unlink()
    idle.limit_file(settings.root, os.getpid()).unlink(missing_ok=True)
    os._exit(0)


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    conn.settimeout(10.0)
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    if len(fds) != 3 or len(data) < HEADER.size:
        for fd in fds:
            os.close(fd)
        raise ValueError("expected a header and three descriptors")
    (size,) = HEADER.unpack(data[:HEADER.size])
    body = data[HEADER.size:]
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("the request ended early")
        body += chunk
    conn.settimeout(None)
    return json.loads(body), fds


def _refusal(request: dict[str, Any], loaded_at: float) -> str | None:
    if request.get("executable") != sys.executable:
        return f"another Python ({request.get('executable')})"
    changed = changed_since(loaded_at)
    return f"project code changed on disk: {changed}" if changed else None


def changed_since(when: float) -> str | None:
    """A module of the project loaded here whose file changed after ``when``, or None."""
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)  # __main__ is this module, run with -m
        if (spec.name if name == "__main__" and spec else name).split(".", 1)[0] not in PROJECT:
            continue
        file = getattr(module, "__file__", None)
        try:
            if file and os.stat(file).st_mtime > when:
                return file
        except OSError:
            return file
    return None


def _child(conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """Become the command: the caller's descriptors, folder, environment and arguments."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the command waits for its own subprocesses
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[WARM_ENV] = "child"
        from ratchet_cli.main import main  # its ensure_server() makes Prefect's settings anew

        sys.argv = ["ratchet", *request["argv"]]
        main(request["argv"])
        code = 0
    except SystemExit as e:
        if isinstance(e.code, str):
            sys.stderr.write(e.code + "\n")
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - the caller sees the traceback, as it would have
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        import atexit

        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # Prefect's event and log workers drain here
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
        os._exit(code)


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
