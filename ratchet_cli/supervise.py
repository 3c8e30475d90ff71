"""``python -m ratchet_cli.supervise [--state FILE] -- CMD ...``: run CMD, and again when it dies.

``ratchet up`` runs the deployment runner under it. The child leads a process group of its
own (its flow runs are in it). When it exits, for whatever reason, what it leaves in that group
(flow runs it was running, their trainings) is killed too: a run whose runner is gone can no
longer be cancelled or have its state reported, and its replacement must be the only process
working for the deployments; the heartbeat automation (``deployments/heartbeats.py``) then
marks those runs Crashed, and the crash-recovery trigger runs training again. The child is then
started again after a pause that doubles from ``--backoff-min`` up to ``--backoff-max``
seconds, and falls back to the minimum once a child has lived ``--stable-s`` seconds. Each
restart is one line on stdout (the runner's log). ``--state`` is a JSON file (``runner.json``
in the home's ``run`` folder) with the current child's id, the number of restarts and how the
last child ended; ``ratchet status`` shows it.

SIGTERM or SIGINT stops it: the child's group gets SIGTERM, then SIGKILL after ``--grace``
seconds, and the supervisor exits 0. Only the standard library and ``ratchet_cli.server``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ratchet.core.files import atomic_write_json, proc_start


def describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Send ``sig`` to the process group ``pgid``; False when it has no member left."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class Supervisor:
    def __init__(self, cmd: list[str], state: Path | None = None, *, backoff_min: float = 1.0,
                 backoff_max: float = 60.0, stable_s: float = 60.0, grace: float = 15.0,
                 max_restarts: int | None = None, env: dict[str, str] | None = None):
        self.cmd, self.state, self.env = cmd, state, env
        self.backoff_min, self.backoff_max, self.stable_s, self.grace = backoff_min, backoff_max, stable_s, grace
        self.max_restarts = max_restarts
        self.restarts = 0
        self.last_exit: dict[str, Any] | None = None
        self.child: subprocess.Popen | None = None
        self.started_at: float | None = None
        self._stop = threading.Event()

    def stop(self, *_: Any) -> None:
        self._stop.set()

    def run(self) -> int:
        """Run the child until stopped (0), or until ``max_restarts`` is spent (the child's code)."""
        delay = self.backoff_min
        while True:
            started = time.monotonic()
            self.child = subprocess.Popen(self.cmd, env=self.env, start_new_session=True)
            self.started_at = time.time()
            self._record()
            returncode = self._wait(self.child)
            ran = time.monotonic() - started
            left = kill_group(self.child.pid)  # what the child left running: its flow runs
            self.last_exit = {"pid": self.child.pid, "how": describe(returncode), "returncode": returncode,
                              "ran_s": round(ran, 1), "at": time.time(), "killed_its_group": left}
            if self._stop.is_set():
                self._record()
                return 0
            if self.max_restarts is not None and self.restarts >= self.max_restarts:
                self._log(f"pid {self.child.pid} exited with {describe(returncode)} after {ran:.0f} s; "
                          f"{self.restarts} restarts spent, giving up")
                self._record()
                return returncode if returncode > 0 else 1
            if ran >= self.stable_s:
                delay = self.backoff_min
            self.restarts += 1
            self._log(f"pid {self.child.pid} exited with {describe(returncode)} after {ran:.0f} s"
                      + ("; killed the processes it left" if left else "")
                      + f"; restart {self.restarts} in {delay:g} s")
            self._record()
            if self._stop.wait(delay):
                return 0
            delay = min(delay * 2, self.backoff_max)

    def _wait(self, child: subprocess.Popen) -> int:
        """The child's return code; on stop, its group gets SIGTERM, then SIGKILL after the grace."""
        deadline = None
        while child.poll() is None:
            if self._stop.is_set() and deadline is None:
                kill_group(child.pid, signal.SIGTERM)
                deadline = time.monotonic() + self.grace
            if deadline is not None and time.monotonic() > deadline:
                kill_group(child.pid, signal.SIGKILL)
            if deadline is None:
                self._stop.wait(0.2)  # returns at once on stop
            else:
                time.sleep(0.1)
        return child.returncode

    def _record(self) -> None:
        if self.state is None or self.child is None:
            return
        record = {"pid": self.child.pid, "proc_start": proc_start(self.child.pid), "started_at": self.started_at,
                  "supervisor_pid": os.getpid(), "restarts": self.restarts, "last_exit": self.last_exit,
                  "command": self.cmd}
        try:
            atomic_write_json(self.state, record)
        except OSError as e:  # a full or read-only home must not stop the supervision
            self._log(f"cannot write {self.state}: {e}")

    def _log(self, message: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} ratchet supervise: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ratchet_cli.supervise", description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, help="JSON file recording the child's id and restarts")
    parser.add_argument("--backoff-min", type=float, default=1.0)
    parser.add_argument("--backoff-max", type=float, default=60.0)
    parser.add_argument("--stable-s", type=float, default=60.0)
    parser.add_argument("--grace", type=float, default=15.0)
    parser.add_argument("--max-restarts", type=int, default=None)
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command to supervise: python -m ratchet_cli.supervise -- CMD ...")
    supervisor = Supervisor(cmd, args.state, backoff_min=args.backoff_min, backoff_max=args.backoff_max,
                            stable_s=args.stable_s, grace=args.grace, max_restarts=args.max_restarts)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
