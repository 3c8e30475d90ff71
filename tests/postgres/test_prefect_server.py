"""A Prefect server on Postgres, as the cluster runs it, recording a flow run.

The server is started as a subprocess on a free port with its database on a
fresh Postgres database; a flow runs in another process against it
(PREFECT_API_URL), and the run is read back through the server's API and from
Postgres itself. Skipped when the server cannot start within 90 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import pytest

from ratchet.core.files import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.postgres

# a fresh database runs all of Prefect's migrations first (seconds); a server that does not
# answer in three minutes has failed, and the test says so with its log instead of skipping
STARTUP_S = 180

FLOW = textwrap.dedent(
    """
    import sys
    from prefect import flow, task

    @task
    def double(x: int) -> int:
        return 2 * x

    @flow(name=sys.argv[1])
    def smoke(x: int) -> int:
        return double(x)

    print(smoke(21))
    """
)




def _clean_env(prefect_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    return env


@pytest.fixture
def prefect_server(pg_database, tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = _clean_env(tmp_path / "server-home") | {
        # Prefect's async driver; the same database URL form the cluster profile accepts
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": pg_database.url(driver="asyncpg"),
    }
    log = (tmp_path / "server.log").open("w")
    prefect = Path(sys.executable).with_name("prefect")
    proc = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited with {proc.returncode}:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server on Postgres did not answer /api/health within {STARTUP_S} s:\n"
                            f"{(tmp_path / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield api
    finally:
        # the server and anything it started share the session we gave it
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


def test_flow_run_is_recorded_by_a_prefect_server_on_postgres(prefect_server, pg_database, tmp_path):
    api = prefect_server
    name = f"pg-smoke-{uuid.uuid4().hex[:8]}"
    env = _clean_env(tmp_path / "client-home") | {"PREFECT_API_URL": api}
    run = subprocess.run([sys.executable, "-c", FLOW, name], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "42"

    flow_filter = {"flows": {"name": {"any_": [name]}}}
    runs = httpx.post(f"{api}/flow_runs/filter", json=flow_filter, timeout=10).raise_for_status().json()
    assert len(runs) == 1
    (flow_run,) = runs
    assert flow_run["state_type"] == "COMPLETED"
    assert flow_run["parameters"] == {"x": 21}
    tasks = httpx.post(
        f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run["id"]]}}}, timeout=10
    ).raise_for_status().json()
    assert [(t["task_key"].split("-")[0], t["state_type"]) for t in tasks] == [("double", "COMPLETED")]

    # the server's database is the Postgres one
    assert pg_database.query("select state_type from flow_run where id = %s", flow_run["id"]) == [("COMPLETED",)]
