"""Warm commands: a command that runs a flow runs in a fork of a process that has imported
everything already.

On two cores a fresh interpreter spends most of a ``ratchet ingest`` or ``ratchet train``
importing Prefect, pandas, whylogs, torch, Lightning and MLflow (2-10 s), before any work.
So beside the home's persistent Prefect server (``ratchet_cli.server``) the first command
that needs Prefect also starts ``python -m ratchet_cli.warm <home>`` in the background: it
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

from ratchet.core.imports import warm_preload
from ratchet.core.settings import Settings
from ratchet.runtime.stack import alive
from ratchet_cli import idle

WARM_ENV = "RATCHET_WARM"  # "0": never; "child": this process is a warm child (never forwards again)
PROJECT = ("ratchet", "ratchet_cli", "flows", "tasks", "deployments")
# imported once by the warm process (a missing optional one is skipped)
PRELOAD = (
    "prefect", "pandas", "pyarrow.parquet", "ratchet_cli.main", "ratchet.data.profiling", "flows.ingest",
    "flows.train", "flows.promote", "flows.score", "torch", "lightning", "mlflow.pyfunc", "optuna",
    "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store",
)
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
    from ratchet_cli.server import _proc_start

    return alive(record["pid"]) and _proc_start(record["pid"]) in (None, record.get("proc_start"))


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
    from ratchet_cli.server import _proc_start, spawn

    env = {**os.environ, WARM_ENV: "1"}
    proc = spawn([sys.executable, "-m", "ratchet_cli.warm", str(settings.root)], env, settings.root / "logs" / "warm.log")
    record = {"pid": proc.pid, "proc_start": _proc_start(proc.pid), "socket": str(socket_path(settings)),
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


# ------------------------------------------------------------------ the warm process
def serve(home: str) -> None:
    """Import everything, then fork a child per command received."""
    settings = Settings(home=home)
    limit = idle.timeout()
    idle.announce(settings.root, limit)
    t0 = time.monotonic()
    for name in warm_preload(PRELOAD):
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
        from ratchet_cli.main import main  # its prefect_home() makes Prefect's settings anew

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
