"""The runner's flow runs start as forks of a warm forkserver (deployments/warm.py): the same
Prefect call the runner makes, a run that completes in the server's history, in a process
whose parent is the forkserver and which finds the preloaded flows imported already."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from tests.conftest import ROOT

SCRIPT = """
import json, os, sys
from deployments.warm import fork_flow_runs
fork_flow_runs(preload=("prefect", "flows.ingest"))
from prefect.flow_engine import run_flow_in_subprocess
from tests.flows.warm_probe import warm_probe
for out in sys.argv[1:]:
    process = run_flow_in_subprocess(warm_probe, parameters={"out": out})
    process.join()
    print(json.dumps({"kind": type(process).__name__, "exitcode": process.exitcode, "caller": os.getpid()}))
"""


def test_flow_runs_fork_from_a_warm_forkserver_and_complete(tmp_path):
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    outs = [str(tmp_path / "first.json"), str(tmp_path / "second.json")]
    env = {**os.environ, "PREFECT_API_URL": api}
    env.pop("RATCHET_WARM", None)
    r = subprocess.run([sys.executable, "-c", SCRIPT, *outs], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    started = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert [s["kind"] for s in started] == ["ForkServerProcess"] * 2 and all(s["exitcode"] == 0 for s in started)
    ran = [json.loads(open(p).read()) for p in outs]
    forkserver = ran[0]["ppid"]
    assert forkserver != started[0]["caller"] and ran[1]["ppid"] == forkserver  # one warm parent for both
    assert all(x["preloaded"] for x in ran) and ran[0]["pid"] != ran[1]["pid"]
    runs = httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": ["warm-probe"]}}}).json()
    assert len(runs) >= 2 and all(run["state_type"] == "COMPLETED" for run in runs)
