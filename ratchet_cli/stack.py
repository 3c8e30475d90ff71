"""The local stack behind ``ratchet up`` / ``ratchet down``.

Three background processes, each with its log in ``<home>/logs``: the home's Prefect
server (its database in the home folder; the one the commands start on first need and
reuse, ``ratchet_cli.server``, started here when none runs), a runner that serves the
deployments and their automations (``python -m deployments.serve``, under
``ratchet_cli.supervise``, which starts it again when it dies and records it in
``<home>/run/runner.json``), and the inference service (``ratchet serve``).
``<home>/run/stack.json`` records their process ids (the runner's supervisor under
``runner``) and URLs (``ratchet.runtime.stack`` reads it).

Prefect is started as a program, never imported here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ratchet.core.files import free_port
from ratchet.core.settings import Settings, prefect_api_headers
from ratchet.delivery import markers
from ratchet.runtime.stack import (
    admin_token,
    alive,
    dashboard_url,
    read_runner,
    read_stack,
    runner_file,
    stack_file,
)
from ratchet_cli import idle, server, warm
from ratchet_cli.server import spawn, stop_group


def _abort_interrupted_canary(settings: Settings, config_files: list[str] | None, reason: str) -> None:
    """A canary whose flow run died with the stack: share back to 0, an ``abort`` in the ledger."""
    if not (settings.serving_dir / markers.MARKER).exists():
        return
    from ratchet.runtime.context import load_context

    ctx = load_context(config_files, home=str(settings.root))
    markers.abort_interrupted(ctx.settings.serving_dir, ctx.ledger, ctx.cfg.model_name, reason)


def _wait_http(url: str, timeout: float, proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; see {log}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s; see {log}")


def up(
    settings: Settings,
    config_files: list[str] | None,
    *,
    serve_port: int | None = None,
    prefect_port: int | None = None,
    timeout: float = 180.0,
) -> dict[str, Any]:
    """Start server, runner and service in the background; register deployments and automations.

    A Prefect server already running for the home (started by an earlier command) is reused.
    A stack with a member gone (a killed worker, a crashed service) is restarted whole on the
    same ports; the Prefect database, registry and ledger in the home carry everything over,
    and the automations pick up what was left (a crashed training run is run again)."""
    running = read_stack(settings)
    if running:
        if all(alive(p["pid"]) for p in running["processes"].values()):
            return {**running, "dashboard_url": dashboard_url(settings), "already_running": True}
        down(settings, config_files)
        prefect_port = prefect_port or urlsplit(running["prefect_api_url"]).port
        serve_port = serve_port or urlsplit(running["service_url"]).port
    settings.ensure()
    idle.hold(settings.root)  # until the stack's record is written, then the stack keeps them
    _abort_interrupted_canary(settings, config_files, "found at `ratchet up`: the stack had stopped during a canary")
    bin_dir = Path(sys.executable).parent
    logs = settings.root / "logs"
    prefect = server.ensure(settings, port=prefect_port, timeout=timeout)
    api = prefect["api_url"]
    warm.ensure_started(settings)  # the commands run against this stack start warm (ratchet_cli/warm.py)
    env = {
        **os.environ,
        **settings.prefect_env(),
        "RATCHET_HOME": str(settings.root),
        "PREFECT_API_URL": api,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "RATCHET_ADMIN_TOKEN": admin_token(settings),  # the runner's canary holds the service's token
    }
    if config_files:
        env["RATCHET_CONFIG"] = os.pathsep.join(str(Path(f).resolve()) for f in config_files)
    procs: dict[str, subprocess.Popen] = {}
    try:
        runner_file(settings).unlink(missing_ok=True)  # the last stack's
        procs["runner"] = spawn([sys.executable, "-m", "ratchet_cli.supervise", "--state", str(runner_file(settings)),
                                 "--", sys.executable, "-m", "deployments.serve"], env, logs / "runner.log")
        serve_port = serve_port or free_port()
        procs["inference"] = spawn(
            [str(bin_dir / "ratchet"), "serve", "--port", str(serve_port)], env, logs / "inference.log"
        )
        service = f"http://127.0.0.1:{serve_port}"
        _wait_http(f"{service}/health", timeout, procs["inference"], "inference service", logs / "inference.log")
        _wait_deployments(settings, api, timeout, procs["runner"], logs / "runner.log")
    except BaseException:  # the Prefect server stays, for the next command
        for p in procs.values():
            stop_group(p.pid)
        raise
    stack = {
        "prefect_api_url": api,
        "dashboard_url": prefect.get("ui_url"),
        "service_url": service,
        "started_at": time.time(),
        "processes": {
            "prefect-server": {"pid": prefect["pid"], "log": prefect["log"]},
            **{name: {"pid": p.pid, "log": str(logs / f"{name}.log")} for name, p in procs.items()},
        },
    }
    path = stack_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stack, indent=2))
    return stack


def _wait_deployments(settings: Settings, api: str, timeout: float, supervisor: subprocess.Popen, log: Path) -> None:
    """The runner registers deployments (and their automations) when it starts; one that
    exits before (its supervisor would start it again) fails ``up`` at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runner = read_runner(settings)
        if supervisor.poll() is not None or (runner and runner["restarts"]):
            how = runner["last_exit"]["how"] if runner and runner["last_exit"] else f"code {supervisor.returncode}"
            raise RuntimeError(f"deployment runner exited with {how}; see {log}")
        try:
            r = httpx.post(f"{api}/deployments/filter", json={"limit": 50}, timeout=5, headers=prefect_api_headers())
            if r.status_code == 200 and len(r.json()) >= 3:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"deployments were not registered within {timeout:.0f} s; see {log}")


def _stop_orphaned_runner(settings: Settings) -> None:
    """The runner its supervisor stops; still alive here only when the supervisor was killed."""
    runner = read_runner(settings)
    if runner and runner["alive"] and server._ours(runner):
        stop_group(runner["pid"])
    runner_file(settings).unlink(missing_ok=True)


def down(settings: Settings, config_files: list[str] | None = None) -> dict[str, Any]:
    """Stop what ``up`` started: service first, then runner, then the home's Prefect server
    (also when only a command had started it). State stays on disk; a canary cut short is
    aborted (share 0, recorded), the champion left as it was."""
    path = stack_file(settings)
    stack = json.loads(path.read_text()) if path.exists() else None
    processes = stack["processes"] if stack else {}
    stopped = [name for name in ("inference", "runner") if name in processes and stop_group(processes[name]["pid"])]
    _stop_orphaned_runner(settings)
    recorded = processes.get("prefect-server")
    if server.stop(settings) or (recorded and stop_group(recorded["pid"])):
        stopped.append("prefect-server")
    if warm.stop(settings):
        stopped.append("warm")
    if stack is None:
        return {"stopped": stopped}
    path.unlink()
    _abort_interrupted_canary(settings, config_files, "`ratchet down` during a canary")
    return {"stopped": stopped}
