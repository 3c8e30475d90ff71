"""The local stack as a user runs it, for tests: `ratchet ...` in separate processes with a
home of their own (``Stack``), a load generator that posts labels back (``load``), and reads
of the stack's Prefect API (``train_runs``, ``flow_run_process``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import CONFIG_FILES

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Stack:
    def __init__(self, home: Path):
        self.home = home
        self.env = {**os.environ, "RATCHET_HOME": str(home), "RATCHET_CONFIG": os.pathsep.join(CONFIG_FILES),
                    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.env.pop("PREFECT_API_URL", None)  # the CLI finds the stack's server itself

    def ratchet(self, *args: str, timeout: float = 600) -> dict:
        r = subprocess.run([str(BIN / "ratchet"), *args, "--json"], env=self.env, cwd=ROOT,
                           capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"ratchet {' '.join(args)}: {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        return json.loads(r.stdout)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([str(BIN / "ratchet"), *args, "--json"], env=self.env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(self, what: str, check, timeout: float = 600, every: float = 3.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(every)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted((self.home / "logs").glob("*.log")))
        raise AssertionError(f"timed out waiting for {what}\n{logs}")


def start_load(url: str, rows: Path, stop: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--rows", str(rows), "--connections", "2",
         "--rate", "40", "--duration", "1800", "--feedback", "0.5", "--stop-file", str(stop), "--out", str(out)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def ready_health(url: str) -> dict | None:
    try:
        health = httpx.get(f"{url}/health", timeout=5).json()
    except httpx.HTTPError:
        return None
    return health if health.get("ready") else None


def challenger_decided(status: dict, history: list[dict]) -> bool:
    """No challenger, or the ledger holds a decision on it: a challenger the gate kept out
    keeps its alias (``record_keep`` leaves it, for `ratchet status` to show), so the alias
    alone does not say the loop is still busy with it."""
    challenger = status.get("challenger")
    return challenger is None or any(
        challenger in (e.get("to_version"), e.get("from_version")) and e["action"] not in ("traffic", "approval_requested")
        for e in history
    )


def train_runs(api: str) -> list[dict]:
    deployments = httpx.post(f"{api}/deployments/filter", json={"limit": 100}, timeout=10).json()
    ids = [d["id"] for d in deployments if d["name"] == "on-data"]
    runs = httpx.post(f"{api}/flow_runs/filter", json={"flow_runs": {"deployment_id": {"any_": ids}}, "limit": 50},
                      timeout=10).json()
    return sorted(runs, key=lambda r: r["created"])


def flow_run_process(run_id: str) -> int | None:
    """The process executing ``run_id``: a fork of the runner's forkserver named after the run
    (``deployments.warm.process_name``), or a spawned one with the run's id in its environment."""
    from deployments.warm import process_name

    name = process_name(run_id)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() == name:
                return int(proc.name)
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"PREFECT__FLOW_RUN_ID={run_id}".encode() in environ:
            return int(proc.name)
    return None


def runner_record(home: Path) -> dict | None:
    """The deployment runner ``ratchet up``'s supervisor runs now (``<home>/run/runner.json``)."""
    try:
        return json.loads((home / "run" / "runner.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting to be reaped by init counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def demo_home(tmp_path: Path):
    """The suite's config, the demo's batches and a ``Stack`` whose home has their schema."""
    from ratchet.core.config import load_config
    from ratchet.demo.stream import make_demo_data

    cfg = load_config([Path(f) for f in CONFIG_FILES])
    data = make_demo_data(cfg.demo, tmp_path / "incoming")
    stack = Stack(tmp_path / "home")
    stack.ratchet("init", "--schema-from", data.clean[0], "--target", data.target)
    return cfg, data, stack
