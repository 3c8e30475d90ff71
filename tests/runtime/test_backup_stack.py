"""A backup of a running stack (`ratchet up`: its Prefect server, runner and flows, the service
under live traffic with feedback, an ingest in flight) restored on a new home after the old
one is deleted: `ratchet serve` there serves the same champion with the same answers, the
history is the live one's beginning and its hash chain holds, `data fsck` is clean.

Slow (several minutes on two cores): `pytest -m slow tests/runtime/test_backup_stack.py`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ratchet.core.config import load_config
from ratchet.core.files import free_port
from ratchet.demo.stream import demo_traffic, make_demo_data
from tests.conftest import CONFIG_FILES
from tests.flows.stack import BIN, ROOT, Stack, ready_health, start_load
from tests.serving.helpers import feature_rows

pytestmark = pytest.mark.slow


def answers(url: str, rows: list[dict]) -> dict:
    r = httpx.post(f"{url}/predict", json={"rows": rows}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    return {k: body.get(k) for k in ("model_version", "predictions", "probabilities")}


def champion_now(stack: Stack) -> str | None:
    """``status``'s champion; None while it cannot say (it fails while a training's first
    MLflow connection is still creating the tracking database's tables)."""
    try:
        return stack.ratchet("status")["champion"]
    except AssertionError:
        return None


def test_a_backup_of_the_running_stack_restores_to_the_same_champion_on_a_new_home(tmp_path):
    cfg = load_config([Path(f) for f in CONFIG_FILES])
    data = make_demo_data(cfg.demo, tmp_path / "incoming")
    stack = Stack(tmp_path / "home")
    stack.ratchet("init", "--schema-from", data.clean[0], "--target", data.target)
    service = stack.ratchet("up", timeout=300)["service_url"]
    frames = [demo_traffic(cfg.demo, data.drift_at, k) for k in range(5)]
    probe = feature_rows(frames[0], data.target)[:20]
    lines = [json.dumps({"row": r, "label": int(y)}) for f in frames
             for r, y in zip(feature_rows(f, data.target), f[data.target], strict=True)]
    (tmp_path / "rows.jsonl").write_text("\n".join(lines))
    stop, archive = tmp_path / "stop", tmp_path / "backups" / "home.tar.gz"
    load = None
    try:
        for path in data.clean:
            stack.ratchet("ingest", path)
        champion = stack.wait("a first champion", lambda: champion_now(stack), timeout=1200)
        stack.wait("the champion served", lambda: (ready_health(service) or {}).get("champion") == champion)
        live = answers(service, probe)
        assert live["model_version"] == champion
        load = start_load(service, tmp_path / "rows.jsonl", stop, tmp_path / "load.json")
        ingest = stack.popen("ingest", data.drifted[0])  # a flow run writing the repository meanwhile
        time.sleep(2)
        backup = stack.ratchet("backup", str(archive), timeout=300)
        assert ingest.wait(timeout=300) == 0, ingest.stderr.read()
        assert backup["champion"] == {cfg.model_name: champion} and backup["ledger_agrees"], backup
        assert "prefect/prefect.db" in backup["databases"] and "mlflow.db" in backup["databases"], backup
        history = stack.ratchet("history")["entries"]
    finally:
        stop.touch()
        if load is not None:
            load.communicate(timeout=60)
        stack.ratchet("down", timeout=120)
    result = json.loads((tmp_path / "load.json").read_text())
    assert result["requests"] > 20 and result["non_2xx"] == 0, result  # the backup disturbed no request
    shutil.rmtree(stack.home)  # a new machine: nothing of the old home is left

    new = Stack(tmp_path / "restored")
    r = subprocess.run([str(BIN / "ratchet"), "restore", str(archive), "--home", str(new.home), "--json"],
                       env=new.env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["champion"] == {cfg.model_name: champion}
    assert new.ratchet("history", "--verify")["ok"]
    restored = new.ratchet("history")["entries"]
    assert restored and restored == history[: len(restored)]
    assert new.ratchet("data", "fsck") == {"ok": True, "problems": []}
    assert new.ratchet("status")["champion"] == champion

    url = f"http://127.0.0.1:{free_port()}"
    serve = subprocess.Popen([str(BIN / "ratchet"), "serve", "--port", url.rsplit(":", 1)[1]], env=new.env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        health = new.wait("the restored home's service", lambda: ready_health(url), timeout=300, every=2.0)
        assert health["champion"] == champion, health
        assert answers(url, probe) == live
    finally:
        serve.terminate()
        serve.communicate(timeout=60)
