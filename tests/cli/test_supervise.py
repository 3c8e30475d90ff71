"""The runner's supervisor (``python -m ratchet_cli.supervise``) with real child processes:
a killed child is started again and what it left is killed, restarts back off, a stop ends all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.flows.stack import gone

# the supervised child: records its pid, leaves a grandchild in its group (a flow run), waits
CHILD = """
import os, subprocess, sys, time
from pathlib import Path
out = Path(sys.argv[1])
kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(out, "a") as f:
    f.write(f"{os.getpid()} {kid.pid}\\n")
time.sleep(600)
"""


def _wait(what: str, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _children(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines() if line.strip()]


def _supervise(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ratchet_cli.supervise", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_killed_child_is_started_again_its_group_killed_and_a_stop_ends_everything(tmp_path):
    script, pids, state = tmp_path / "child.py", tmp_path / "pids", tmp_path / "run" / "runner.json"
    script.write_text(CHILD)
    sup = _supervise(tmp_path, "--state", str(state), "--backoff-min", "0.2", "--grace", "5",
                     "--", sys.executable, str(script), str(pids))
    try:
        first, first_kid = _wait("the first child", lambda: (_children(pids) or [None])[0])
        record = _wait("the state file", lambda: state.exists() and json.loads(state.read_text()))
        assert record["pid"] == first and record["restarts"] == 0 and record["supervisor_pid"] == sup.pid
        assert os.getpgid(first) == first != os.getpgid(sup.pid)  # a group of its own

        os.kill(first, signal.SIGKILL)  # the runner dies; its flow run (the grandchild) is left behind
        second, second_kid = _wait("a second child", lambda: (_children(pids)[1:] or [None])[0])
        assert second != first
        assert _wait("the first child's grandchild killed", lambda: gone(first_kid))
        record = _wait("the restart recorded", lambda: (r := json.loads(state.read_text()))["pid"] == second and r)
        assert record["restarts"] == 1, record
        assert record["last_exit"]["how"] == "signal SIGKILL" and record["last_exit"]["pid"] == first
        assert record["last_exit"]["killed_its_group"] is True

        sup.send_signal(signal.SIGTERM)  # `ratchet down`
        out, _ = sup.communicate(timeout=20)
        assert sup.returncode == 0, out
        assert gone(second) and _wait("the second grandchild stopped", lambda: gone(second_kid), timeout=10)
        assert f"pid {first} exited with signal SIGKILL" in out and "restart 1 in 0.2 s" in out, out
        assert len(_children(pids)) == 2  # never started again after the stop
    finally:
        if sup.poll() is None:
            sup.kill()
        for a, b in _children(pids):
            for pid in (a, b):
                if not gone(pid):
                    os.kill(pid, signal.SIGKILL)


def test_restarts_back_off_and_a_spent_budget_gives_the_childs_exit_code(tmp_path):
    t0 = time.monotonic()
    sup = _supervise(tmp_path, "--backoff-min", "0.2", "--backoff-max", "0.5", "--max-restarts", "3",
                     "--", sys.executable, "-c", "import sys; sys.exit(3)")
    out, _ = sup.communicate(timeout=60)
    waited = time.monotonic() - t0
    assert sup.returncode == 3, out
    delays = [line.rsplit(" in ", 1)[1] for line in out.splitlines() if "restart " in line]
    assert delays == ["0.2 s", "0.4 s", "0.5 s"], out  # doubling, capped
    assert "exited with code 3" in out and "3 restarts spent, giving up" in out
    assert waited >= 1.1  # the pauses were taken


def test_no_command_is_a_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ratchet_cli.supervise", "--state", str(tmp_path / "s.json")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no command to supervise" in r.stderr
