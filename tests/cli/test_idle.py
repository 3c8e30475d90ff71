"""Background processes that go away (ratchet_cli/idle.py): the home's Prefect server and warm
process stop by themselves after RATCHET_IDLE_TIMEOUT without a command, never while a
command runs or a stack is up; `ratchet status` shows them with their memory, and
`ratchet down --all` stops those of every home of this user (ratchet_cli/homes.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ratchet.core.settings import Settings
from ratchet.runtime.stack import alive, read_server
from ratchet_cli import homes, idle, server, warm

HOLD = "import sys, time; from pathlib import Path; from ratchet_cli import idle; idle.hold(Path(sys.argv[1])); time.sleep(600)"


def _wait_gone(pid: int, seconds: float) -> float:
    """Seconds it took the process to go (reaping it when it is our child); fails after ``seconds``."""
    t0 = time.monotonic()
    while alive(pid):
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        except ChildProcessError:
            pass
        assert time.monotonic() - t0 < seconds, f"process {pid} still runs after {seconds} s"
        time.sleep(0.2)
    return time.monotonic() - t0


def _ready_warm(settings: Settings, seconds: float = 120) -> dict:
    warm.ensure_started(settings)
    record = warm.read_record(settings)
    assert record is not None
    deadline = time.monotonic() + seconds
    while not Path(record["socket"]).exists():
        assert warm.read_record(settings), (settings.root / "logs" / "warm.log").read_text()
        assert time.monotonic() < deadline, "the warm process never listened"
        time.sleep(0.2)
    return record


def test_the_timeout_reads_seconds_and_units_and_a_bad_one_stops_a_command_in_one_line(project, monkeypatch):
    for raw, seconds in (("", 1800), ("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("0", 0), ("1.5", 1.5)):
        monkeypatch.setenv(idle.TIMEOUT_ENV, raw)
        assert idle.timeout() == seconds, raw
    bad = project.run("ingest", "batch-1.csv", RATCHET_IDLE_TIMEOUT="soon")
    assert bad.returncode == 1, bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "error: RATCHET_IDLE_TIMEOUT='soon': expected a duration >= 0 such as 1800, 90s, 30m or 2h (0: never stop)"]
    assert not (project.home / "run" / "commands").exists() or not list((project.home / "run" / "commands").iterdir())


def test_the_wrapped_server_stays_while_a_command_holds_the_home_and_stops_when_idle(tmp_path):
    """A stand-in for `prefect server start` under the real wrapper (about 5 s)."""
    root = tmp_path / "home"
    record = root / "run" / "prefect-server.json"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root)])
    try:
        deadline = time.monotonic() + 30
        while not (idle.leases_dir(root) / str(holder.pid)).exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        cmd = idle.wrap(root, [sys.executable, "-c", "import time; time.sleep(600)"])
        assert cmd[:3] == [sys.executable, "-m", "ratchet_cli.idle"]  # the default timeout is not 0
        cmd[4] = "1"  # a one-second timeout, as RATCHET_IDLE_TIMEOUT=1 would give
        wrapper = subprocess.Popen(cmd, start_new_session=True)
        record.write_text(json.dumps({"pid": wrapper.pid}))
        time.sleep(3)  # three timeouts with a live command: kept
        assert wrapper.poll() is None and record.exists()
        (shown,) = idle.processes(root)  # as `ratchet status` lists it: the group's memory, its timeout
        assert shown["name"] == "prefect-server" and shown["pid"] == wrapper.pid and shown["rss_mb"] > 5
        assert shown["stops_after_idle_s"] == 1 and shown["idle_s"] == 0  # busy: never idle
    finally:
        holder.kill()
        holder.wait()
    assert not idle.busy(root)  # the dead command's lease is dropped
    assert wrapper.wait(timeout=30) == 0  # then idle for a second: stopped
    assert not record.exists()  # a command finds no server, and starts one
    assert not alive(wrapper.pid)


def test_a_running_stack_keeps_the_home_busy(tmp_path):
    root = tmp_path / "home"
    (root / "run").mkdir(parents=True)
    assert not idle.busy(root)
    (root / "run" / "stack.json").write_text(json.dumps({"processes": {"runner": {"pid": os.getpid()}}}))
    assert idle.busy(root) and idle.idle_seconds(root, time.time() - 100) == 0
    (root / "run" / "stack.json").write_text(json.dumps({"processes": {"runner": {"pid": 2**22 + 1}}}))
    assert not idle.busy(root) and idle.idle_seconds(root, time.time() - 100) > 0


def test_status_shows_the_warm_process_and_its_memory_and_it_stops_by_itself(project, monkeypatch):
    """A real warm process (preloading the standard library's json only), idle timeout 4 s."""
    monkeypatch.setenv("RATCHET_WARM_PRELOAD", "json")
    monkeypatch.setenv(idle.TIMEOUT_ENV, "3")
    settings = Settings(home=project.home).ensure()
    record = _ready_warm(settings)
    ready = time.monotonic()

    status = project.run("status", "--json")
    assert status.returncode == 0, status.stderr
    (shown,) = json.loads(status.stdout)["background"]
    assert shown["name"] == "warm" and shown["pid"] == record["pid"] and shown["stops_after_idle_s"] == 3
    assert shown["rss_mb"] > 20  # the interpreter and pydantic's settings; a process gone reads 0
    assert idle.describe([shown]) == [
        f"background warm: pid {record['pid']}, {shown['rss_mb']:.0f} MB, idle {int(shown['idle_s'])}s, stops after 3s idle"]

    _wait_gone(record["pid"], 60)
    assert warm.read_record(settings) is None and not Path(record["socket"]).exists()
    assert "idle for 3 s: stopping" in (project.home / "logs" / "warm.log").read_text()
    print(f"warm process gone {time.monotonic() - ready:.1f} s after it was ready")
    assert idle.processes(settings.root) == []  # what `status` lists


def test_down_all_stops_the_background_processes_of_every_registered_home(tmp_path, monkeypatch, project):
    """Two homes, each with a warm process (json only, no idle timeout): found through the
    per-user registry, stopped by one `ratchet down --all`."""
    monkeypatch.setenv("RATCHET_WARM_PRELOAD", "json")
    monkeypatch.setenv(idle.TIMEOUT_ENV, "0")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    both = [Settings(home=tmp_path / name).ensure() for name in ("a", "b")]
    for settings in both:
        idle.hold(settings.root)  # what a command does: registers its home
        warm.ensure_started(settings)
    pids = [_ready_warm(settings)["pid"] for settings in both]
    assert sorted(homes.registered()) == sorted([(tmp_path / "a").resolve(), (tmp_path / "b").resolve()])
    listed = json.loads(project.run("status", "--all", "--json", XDG_STATE_HOME=str(tmp_path / "state")).stdout)
    assert {p["pid"] for h in listed["homes"] for p in h["background"]} == set(pids)
    assert all(p["stops_after_idle_s"] is None for h in listed["homes"] for p in h["background"])  # 0: never
    here = json.loads(project.run("--home", str(tmp_path / "a"), "status", "--json", XDG_STATE_HOME=str(tmp_path / "state")).stdout)
    assert [p["pid"] for p in here["background"]] == pids[:1]
    assert [(h["home"], h["processes"]) for h in here["other_homes"]] == [(str((tmp_path / "b").resolve()), 1)]

    down = project.run("down", "--all", "--json", XDG_STATE_HOME=str(tmp_path / "state"))
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["homes"] == {str((tmp_path / n).resolve()): ["warm"] for n in ("a", "b")}
    for pid in pids:
        _wait_gone(pid, 30)
    assert not any(idle.processes(home) for home in homes.registered())


@pytest.mark.slow
def test_an_ingest_leaves_nothing_running_after_the_idle_timeout_and_the_next_ingest_starts_it_again(project):
    """The issue's check with a short timeout: the home's real Prefect server and warm process
    (full preload), started by `ratchet ingest`, stop 5 s after it; the next ingest starts
    them again and works. Slow: two Prefect server starts and two warm preloads (1-2 min)."""
    env = {"RATCHET_PREFECT_SERVER": "persistent", "RATCHET_IDLE_TIMEOUT": "5"}
    init = project.run("init", "--schema-from", "sample.csv", "--target", "target")
    assert init.returncode == 0, init.stderr
    settings = Settings(home=project.home)
    try:
        for batch in ("batch-1.csv", "batch-2.csv"):
            done = project.run("ingest", batch, "--json", timeout=300, **env)
            assert done.returncode == 0 and json.loads(done.stdout)["status"] == "published", done.stderr
            status = json.loads(project.run("status", "--json").stdout)["background"]
            assert {p["name"] for p in status} == {"prefect-server", "warm"}, status
            assert all(p["rss_mb"] > 10 and p["stops_after_idle_s"] == 5 for p in status), status
            for p in status:
                _wait_gone(p["pid"], 240)  # a warm process still preloading stops once ready
            assert read_server(settings) is None and warm.read_record(settings) is None
            assert json.loads(project.run("status", "--json").stdout)["background"] == []
            log = (project.home / "logs" / "prefect-server.log").read_text()
            assert "idle for 5 s: stopping" in log
    finally:
        server.stop(settings)
        warm.stop(settings)


@pytest.mark.slow
def test_a_stack_started_by_up_stays_past_the_idle_timeout_until_down(project):
    """`ratchet up` with a 3 s idle timeout: nothing of its stack stops while it runs; `ratchet
    down` stops all of it. Slow: a whole stack (about a minute)."""
    env = {"RATCHET_PREFECT_SERVER": "persistent", "RATCHET_IDLE_TIMEOUT": "3"}
    init = project.run("init", "--schema-from", "sample.csv", "--target", "target")
    assert init.returncode == 0, init.stderr
    try:
        up = project.run("up", "--json", timeout=300, **env)
        assert up.returncode == 0, up.stderr
        time.sleep(15)  # five timeouts
        shown = json.loads(project.run("status", "--json").stdout)["background"]
        assert {p["name"] for p in shown} == {"prefect-server", "warm", "runner", "inference"}, shown
        assert all(p["stops_after_idle_s"] is None for p in shown), shown  # until `ratchet down`
        assert "idle for" not in (project.home / "logs" / "prefect-server.log").read_text()
    finally:
        down = project.run("down", "--json", timeout=120, **env)
    assert set(json.loads(down.stdout)["stopped"]) == {"inference", "runner", "prefect-server", "warm"}, down.stderr
    for p in shown:
        _wait_gone(p["pid"], 60)
