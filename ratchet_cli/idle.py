"""Background processes that go away when idle, and say what they hold.

The first command that needs Prefect leaves two processes running for its home: the home's
Prefect server (``ratchet_cli.server``) and the warm process (``ratchet_cli.warm``). Each
stops by itself once no command has used the home for ``RATCHET_IDLE_TIMEOUT`` (default
30 minutes; seconds, or ``90s``, ``30m``, ``2h``; ``0``: never), as Gradle's daemon and
Bazel's server do after three idle hours; the next command starts them again. A stack
started by ``ratchet up`` stays until ``ratchet down``.

How "used" is known, without asking the processes: a command that may use them holds a
lease while it runs, ``<home>/run/commands/<pid>`` (``hold``; it goes at exit, and a killed
command's lease goes with its process), and ``<home>/run/last-command`` is touched when a
lease is taken or given back and while any is held. A home is busy while a live lease or a
running stack exists; idle for the seconds since ``last-command`` (or since the process
started, when later) otherwise. The warm process checks between commands; the Prefect
server, a program of Prefect's, runs under ``python -m ratchet_cli.idle`` (``wrap``), which
stops it, under the lock ``ensure`` takes, so no command is handed a server about to go.

``processes`` lists what a home runs in the background with its resident memory (the sum
over its process group) and idle time, for ``ratchet status``. Only the standard library:
the wrapper stays a small process.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ratchet.core.files import alive as _alive
from ratchet.core.files import atomic_write, proc_start, stop_process

TIMEOUT_ENV = "RATCHET_IDLE_TIMEOUT"
DEFAULT_TIMEOUT = 1800.0  # 30 minutes
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_held: set[Path] = set()


def timeout() -> float:
    """Seconds without a command after which the home's background processes stop (0: never),
    from ``RATCHET_IDLE_TIMEOUT``; a bad value is a one-line ``ValueError``."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip().lower()
    if not raw:
        return DEFAULT_TIMEOUT
    number, unit = (raw[:-1], UNITS[raw[-1]]) if raw[-1] in UNITS else (raw, 1.0)
    try:
        value = float(number) * unit
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: expected a duration >= 0 such as 1800, 90s, 30m or 2h (0: never stop)")
    return value


def leases_dir(root: Path) -> Path:
    return root / "run" / "commands"


def activity_file(root: Path) -> Path:
    return root / "run" / "last-command"


def hold(root: Path) -> None:
    """This process uses the home's background processes until it exits: take a lease (and
    register the home for ``ratchet status --all`` / ``ratchet down --all``)."""
    timeout()  # a bad value stops the command here, in one line
    from ratchet_cli import homes

    with contextlib.suppress(OSError):  # a read-only home folder of the user's: the registry is a convenience
        homes.register(root)
    lease = leases_dir(root) / str(os.getpid())
    try:
        atomic_write(lease, str(proc_start(os.getpid())))
        _touch(root)
    except OSError:  # a full or read-only home: no lease (the idle watcher may stop early); the command
        return  # goes on and names the disk's problem itself, where it writes what matters
    if lease not in _held:
        _held.add(lease)
        atexit.register(_release, root, lease)


def _release(root: Path, lease: Path) -> None:
    with contextlib.suppress(OSError):
        lease.unlink(missing_ok=True)
        if activity_file(root).parent.is_dir():  # a home removed meanwhile (a test's) is not made again
            activity_file(root).touch()
    _held.discard(lease)


def _touch(root: Path) -> None:
    path = activity_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def busy(root: Path) -> bool:
    """A command holds a lease (leases of dead processes are removed), or a stack runs."""
    held = False
    with contextlib.suppress(FileNotFoundError):
        for lease in leases_dir(root).iterdir():
            try:
                pid, started = int(lease.name), lease.read_text().strip()
            except (ValueError, OSError):
                continue
            if _alive(pid) and str(proc_start(pid)) == started:
                held = True
            else:
                lease.unlink(missing_ok=True)
    return held or stack_running(root)


def stack_running(root: Path) -> bool:
    """``ratchet up``'s stack runs (a member of ``<home>/run/stack.json`` lives)."""
    try:
        stack = json.loads((root / "run" / "stack.json").read_text())
    except (OSError, ValueError):
        return False
    return any(_alive(p["pid"]) for p in stack.get("processes", {}).values())


def idle_seconds(root: Path, started_at: float) -> float:
    """Seconds since the home was last used (0 while busy), counted from ``started_at`` at
    the earliest."""
    if busy(root):
        _touch(root)  # a command killed later still counts as used until now
        return 0.0
    try:
        last = max(activity_file(root).stat().st_mtime, started_at)
    except OSError:
        last = started_at
    return max(0.0, time.time() - last)


def expired(root: Path, started_at: float, limit: float) -> bool:
    return limit > 0 and idle_seconds(root, started_at) >= limit


def poll_interval(limit: float) -> float:
    """How often a process checks: a fifth of the timeout, between 0.5 s and a minute."""
    return min(60.0, max(0.5, limit / 5)) if limit > 0 else 3600.0


def limit_file(root: Path, pid: int) -> Path:
    """The idle timeout a background process runs under, for ``ratchet status``."""
    return root / "run" / "idle" / str(pid)


def announce(root: Path, limit: float) -> None:
    """Record this process's idle timeout; forget those of processes gone."""
    atomic_write(limit_file(root, os.getpid()), f"{limit:g}")
    for stale in limit_file(root, os.getpid()).parent.iterdir():
        if stale.name.isdigit() and not _alive(int(stale.name)):
            stale.unlink(missing_ok=True)


# ------------------------------------------------------------------ the server's wrapper
def wrap(root: Path, cmd: list[str]) -> list[str]:
    """``cmd`` (the Prefect server) run under the idle watcher, unless the timeout is 0."""
    limit = timeout()
    if limit <= 0:
        return cmd
    return [sys.executable, "-m", "ratchet_cli.idle", str(root), f"{limit:g}", "--", *cmd]


def run_wrapped(root: Path, limit: float, cmd: list[str], record: Path, lock: Path) -> int:
    """Run ``cmd`` in this process group; stop it once the home is idle for ``limit``
    seconds. SIGTERM (``ratchet down``'s, to the whole group) ends it as before: this exits
    when the child has."""
    child = subprocess.Popen(cmd, preexec_fn=_die_with_parent if sys.platform == "linux" else None)  # noqa: PLW1509 - one thread here
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    started = time.time()
    announce(root, limit)
    while True:
        try:
            return child.wait(timeout=poll_interval(limit))
        except subprocess.TimeoutExpired:
            pass
        if not expired(root, started, limit):
            continue
        with _locked(lock):  # what ``ensure`` holds: no command reuses the server meanwhile
            if not expired(root, started, limit):
                continue
            with contextlib.suppress(OSError, ValueError):
                if json.loads(record.read_text())["pid"] == os.getpid():
                    record.unlink()
            print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} idle for {limit:g} s: stopping", flush=True)
            stop_process(child)
            limit_file(root, os.getpid()).unlink(missing_ok=True)
            return 0


def _die_with_parent() -> None:
    """In the child: SIGTERM when this watcher dies, even by SIGKILL, so no server outlives
    the record of it (Linux's ``PR_SET_PDEATHSIG``; Python has no wrapper of its own)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ------------------------------------------------------------------ what a home runs
def processes(root: Path, rss: dict[int, int] | None = None) -> list[dict[str, Any]]:
    """The home's background processes that live: name, pid, resident memory of its process
    group in MB, idle seconds, and the idle timeout it stops after (None: until ``ratchet
    down``). ``rss``: ``rss_by_group()`` when read once for several homes."""
    rss = rss_by_group() if rss is None else rss
    found: list[tuple[str, dict[str, Any]]] = []
    for name, file in (("prefect-server", "prefect-server.json"), ("warm", "warm.json")):
        with contextlib.suppress(OSError, ValueError):
            found.append((name, json.loads((root / "run" / file).read_text())))
    stack = _read_json(root / "run" / "stack.json") or {}
    recorded = {r.get("pid") for _, r in found}
    found += [(name, r) for name, r in stack.get("processes", {}).items() if r.get("pid") not in recorded]
    in_stack = stack_running(root)
    out = []
    for name, record in found:
        pid = int(record["pid"])
        if not _alive(pid) or record.get("proc_start") not in (None, proc_start(pid)):
            continue
        started = float(record.get("started_at") or 0)
        limit = _read_float(limit_file(root, pid))
        out.append({
            "name": name, "pid": pid, "rss_mb": round(rss.get(pid, 0) / 2**20, 1),
            "idle_s": round(idle_seconds(root, started), 1),
            "stops_after_idle_s": None if in_stack or not limit else limit,
        })
    return out


def describe(procs: list[dict[str, Any]]) -> list[str]:
    return [
        f"background {p['name']}: pid {p['pid']}, {p['rss_mb']:.0f} MB, idle {_duration(p['idle_s'])}, "
        + (f"stops after {_duration(p['stops_after_idle_s'])} idle" if p["stops_after_idle_s"] else "until `ratchet down`")
        for p in procs
    ]


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def rss_by_group() -> dict[int, int]:
    """Resident bytes per process group, summed over its members (a server and its workers,
    the warm process and the commands it runs), from one pass over ``/proc``."""
    page = os.sysconf("SC_PAGE_SIZE")
    totals: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pgid = int(fields[2])  # fields from the state on: state ppid pgrp ...; rss is the 24th of the line
        totals[pgid] = totals.get(pgid, 0) + int(fields[21]) * page
    return totals


def others(root: Path) -> list[dict[str, Any]]:
    """The other registered homes with background processes: home, count, memory in MB."""
    from ratchet_cli import homes

    rss = rss_by_group()
    found = [(h, processes(h, rss)) for h in homes.registered() if h.resolve() != root.resolve()]
    return [{"home": str(h), "processes": len(p), "rss_mb": round(sum(x["rss_mb"] for x in p), 1)} for h, p in found if p]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_float(path: Path) -> float | None:
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":  # python -m ratchet_cli.idle HOME TIMEOUT -- CMD ...
    home = Path(sys.argv[1])
    sys.exit(run_wrapped(home, float(sys.argv[2]), sys.argv[4:], home / "run" / "prefect-server.json",
                         home / "run" / "prefect-server.lock"))
