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


SERVED = """
import sys
from deployments.warm import fork_flow_runs
fork_flow_runs(preload=("prefect", "flows.ingest"))
from deployments.serve import run_served
from tests.flows.warm_probe import warm_probe
run_served([warm_probe.to_deployment(name=sys.argv[1])], {"warm-probe": warm_probe}, query_seconds=1)
"""


def test_a_served_deployment_s_run_forks_from_the_warm_forkserver(tmp_path):
    """The runner ``ratchet up`` starts (``deployments.serve.run_served``) runs a deployment's run
    as a fork of the forkserver: not ``python -m prefect.engine``, a fresh interpreter whose
    parent is the runner and which has imported nothing ahead (Prefect 3.9's runner does that
    for every deployment it was not given the flow object of)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    env = {**os.environ, "PREFECT_API_URL": api}
    env.pop("RATCHET_WARM", None)
    name = f"served-{tmp_path.name}"[:60]
    runner = subprocess.Popen([sys.executable, "-c", SERVED, name], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out = tmp_path / "ran.json"
    try:
        with get_client(sync_client=True) as client:
            deadline = time.time() + 120
            deployment = None
            while deployment is None and time.time() < deadline and runner.poll() is None:
                try:
                    deployment = client.read_deployment_by_name(f"warm-probe/{name}")
                except Exception:  # not registered yet
                    time.sleep(0.5)
            assert deployment is not None, runner.stderr.read()[-3000:] if runner.poll() is not None else "no deployment"
            run = client.create_flow_run_from_deployment(deployment.id, parameters={"out": str(out)})
            while time.time() < deadline and not client.read_flow_run(run.id).state.is_final():
                time.sleep(0.5)
            assert client.read_flow_run(run.id).state.is_completed()
        ran = json.loads(out.read_text())
        assert ran["ppid"] != runner.pid, "the run's parent is the runner: a fresh interpreter, not a fork"
        assert ran["preloaded"], "the run found nothing imported ahead"
        assert ran["options"] == "RunOptions"  # the flow's typed parameters validated in the fork
        from deployments.warm import process_name

        assert ran["comm"] == process_name(str(run.id))  # named after its run: `ps` tells the runs apart
    finally:
        runner.terminate()
        runner.wait(timeout=60)
