"""Multi-node training on this machine: node 0 is this process, node 1 a real node
agent (``python -m ratchet.training.model.distributed.node``) in a subprocess; both talk to the
coordination store on 127.0.0.1 and train one DDP model on CPU (gloo).

Each real fit starts two rank processes that import Lightning (tens of seconds
on a busy 2-core machine), so the tests that train keep to one fit each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ratchet.core.config import load_config
from ratchet.core.files import free_port
from ratchet.data.schema_inference import infer_schema
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
from ratchet.training.model.distributed import node
from ratchet.training.model.distributed.node import NodeError
from ratchet.training.model.distributed.ranks import weights_digest
from ratchet.training.model.fit import fit
from ratchet.training.window import split_frame
from tests.conftest import CONFIG_FILES, ROOT
from tests.training.helpers import HoldAt

HEARTBEAT_S = 3.0
DISPATCH = "import sys; from ratchet.training.model.distributed.node import dispatch; sys.exit(dispatch())"  # the `ratchet-node` script


@pytest.fixture(scope="module")
def data():
    cfg = load_config([Path(f) for f in CONFIG_FILES])
    df = generate_batch(0, 700, seed=3)
    schema = infer_schema(df, DEMO_TARGET)
    train, val, _ = split_frame(df, 0.15, 0.2, seed=1)
    tc = cfg.train.model_copy(update={
        "model_class": "tests.training.helpers.TinyLogReg", "model_args": {}, "learning_rate": 0.2,
        "num_nodes": 2, "devices": 1, "accelerator": "cpu", "max_epochs": 3, "batch_size": 64,
        "early_stopping_patience": None,
    })
    return tc, schema, train, val


@pytest.fixture
def nodes(monkeypatch):
    """The environment every node of one test's training shares (node 0: this process)."""
    for var in ("NODE_RANK", "JOB_COMPLETION_INDEX", node.HOSTED_ENV, node.NUM_NODES_ENV, "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    env = {
        "MASTER_ADDR": "127.0.0.1",
        node.COORD_PORT_ENV: str(free_port()),
        node.JOIN_TIMEOUT_ENV: "60",
        node.HEARTBEAT_TIMEOUT_ENV: str(HEARTBEAT_S),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    started: list[subprocess.Popen] = []
    yield env, started
    node.release_nodes()
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def start(started: list, args: list[str], log: Path, **env: str) -> subprocess.Popen:
    """A process on "another node": this machine, its own environment, its log in ``log``."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with open(log, "wb") as fh:
        p = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=full, stdout=fh, stderr=subprocess.STDOUT)
    started.append(p)
    return p


def test_two_nodes_train_one_model_and_the_agent_leaves_when_released(nodes, data, tmp_path):
    _, started = nodes
    tc, schema, train, val = data
    log = tmp_path / "node1.log"
    agent = start(started, ["-m", "ratchet.training.model.distributed.node"], log, NODE_RANK="1")

    result = fit(train, val, schema, tc, progress=False)

    ranks = result.ranks
    assert [r["rank"] for r in ranks] == [0, 1] and {r["world_size"] for r in ranks} == {2}
    assert [r["node_rank"] for r in ranks] == [0, 1]  # rank 1 ran on node 1, started by the agent
    assert len({r["pid"] for r in ranks} | {os.getpid(), agent.pid}) == 4
    # both nodes trained, on half the rows each
    assert ranks[0]["train_batches_per_epoch"] == ranks[1]["train_batches_per_epoch"] >= 1
    assert ranks[0]["train_rows_per_epoch"] == ranks[1]["train_rows_per_epoch"]
    assert 0 <= 2 * ranks[0]["train_rows_per_epoch"] - len(train) < 2
    # one synchronised model: every rank ended with the same weights, and they are the
    # weights this process got back from rank 0
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"] == weights_digest(result.predictor.module)
    assert result.metrics["epochs"] == tc.max_epochs and len(result.history) == tc.max_epochs
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]  # it learnt

    node.release_nodes()
    assert agent.wait(timeout=30) == 0, log.read_text()
    text = log.read_text()
    assert "fit 0: done" in text and "released by node 0" in text


@pytest.mark.slow  # 16 s; the two-node fit above keeps the default run's coverage of the agent
def test_a_node_killed_mid_fit_fails_the_fit_on_node_0_naming_it(nodes, data, tmp_path):
    _, started = nodes
    tc, schema, train, val = data
    agent = start(started, ["-m", "ratchet.training.model.distributed.node"], tmp_path / "node1.log", NODE_RANK="1")
    marker = tmp_path / "hold"
    killed: list[float] = []

    def kill_node_1_mid_fit() -> None:
        # rank 1 (on node 1) holds at the start of epoch 1: both nodes have trained
        # epoch 0, rank 0 waits for rank 1 in DDP; then the agent dies, as a pod does
        deadline = time.monotonic() + 300
        while not Path(f"{marker}.1").exists() and time.monotonic() < deadline and agent.poll() is None:
            time.sleep(0.1)
        os.kill(agent.pid, signal.SIGKILL)
        killed.append(time.monotonic())

    killer = threading.Thread(target=kill_node_1_mid_fit, daemon=True)
    killer.start()
    with pytest.raises(NodeError) as err:
        fit(train, val, schema, tc, callbacks=[HoldAt(1, str(marker), [1], hold_s=120)], progress=False)
    raised = time.monotonic()
    killer.join(timeout=5)

    message = str(err.value)
    assert killed and Path(f"{marker}.1").exists(), message
    assert "multi-node fit 0 (2 nodes) failed: node 1 stopped responding" in message
    assert raised - killed[0] < HEARTBEAT_S + 15  # bounded: a heartbeat timeout and the grace periods
    assert agent.wait(timeout=5) == -signal.SIGKILL
    # the killed agent's rank went with it instead of training on alone
    rank_pid = int(Path(f"{marker}.1").read_text())
    assert not _running(rank_pid)

    # the next fit (the next trial) fails at once: node 1 is known dead
    t = time.monotonic()
    with pytest.raises(NodeError, match="node 1 stopped responding"):
        fit(train, val, schema, tc, progress=False)
    assert time.monotonic() - t < 10


def test_a_node_that_never_joins_is_a_timeout_naming_it(nodes, data, monkeypatch):
    monkeypatch.setenv(node.JOIN_TIMEOUT_ENV, "2")
    tc, schema, train, val = data
    # the error names the 2 s join timeout it hit (no wall-clock bound: a busy machine is slow,
    # and a fit that waited on would hang into pytest's timeout instead of raising this)
    with pytest.raises(NodeError, match=r"node\(s\) 1 of 2 did not join within 2 s.*NODE_RANK"):
        fit(train, val, schema, tc, progress=False)


def test_the_agent_of_a_job_pod_gives_up_when_node_0_never_answers(nodes, tmp_path):
    env, started = nodes
    log = tmp_path / "pod1.log"
    # a pod of an Indexed Job: its index from JOB_COMPLETION_INDEX, the flow run's command ignored
    pod = start(started, ["-c", DISPATCH, "--num-nodes=2", "--", "prefect", "flow-run", "execute"], log,
                JOB_COMPLETION_INDEX="1", **{node.JOIN_TIMEOUT_ENV: "2"})
    assert pod.wait(timeout=60) == 1
    text = log.read_text()
    where = f"127.0.0.1:{env[node.COORD_PORT_ENV]}"
    assert f"node 1: node 0's coordination store at {where} did not answer within 2 s" in text, text


def test_node_0_entry_point_runs_the_command_and_releases_the_agents_however_it_ends(nodes, tmp_path):
    """The flow run may end without training (the model was trained already) or fail:
    the agents are released all the same, and the pod's status is the command's."""
    _, started = nodes
    agent = start(started, ["-m", "ratchet.training.model.distributed.node"], tmp_path / "node1.log", NODE_RANK="1")
    command = "import os, sys; print(os.environ['RATCHET_NUM_NODES'], os.environ['RATCHET_COORD_HOSTED']); sys.exit(3)"
    pod0 = subprocess.run(
        [sys.executable, "-c", DISPATCH, "--num-nodes=2", "--", sys.executable, "-c", command],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "JOB_COMPLETION_INDEX": "0"},
        capture_output=True, text=True, timeout=120,
    )
    assert pod0.returncode == 3, pod0.stderr
    assert pod0.stdout.split() == ["2", "1"]
    assert agent.wait(timeout=30) == 0


def test_the_job_sets_the_number_of_nodes(monkeypatch, home):
    from ratchet.runtime.context import load_context

    monkeypatch.setenv(node.NUM_NODES_ENV, "3")
    assert load_context(CONFIG_FILES, home=str(home)).cfg.train.num_nodes == 3
    # a flow's explicit overrides still have the last word
    ctx = load_context(CONFIG_FILES, overrides={"train": {"num_nodes": 2, "devices": 1}}, home=str(home))
    assert ctx.cfg.train.num_nodes == 2 and ctx.cfg.train.devices == 1


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
def test_an_optuna_search_runs_each_trial_on_both_nodes(nodes, tmp_path, monkeypatch):
    """Trials run one after another in the flow: each is one fit the same agent serves."""
    import mlflow

    from ratchet.training.model.tune import tune

    _, started = nodes
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    mlflow.set_experiment("multinode")
    cfg = load_config([Path(f) for f in CONFIG_FILES], {"train": {"num_nodes": 2, "devices": 1, "max_epochs": 2}})
    df = generate_batch(0, 700, seed=3)
    schema = infer_schema(df, DEMO_TARGET)
    train, val, _ = split_frame(df, 0.15, 0.2, seed=1)
    log = tmp_path / "node1.log"
    agent = start(started, ["-m", "ratchet.training.model.distributed.node"], log, NODE_RANK="1")

    out = tune(train, val, schema, cfg, storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="s", trials=2,
               progress=False, checkpoint_root=tmp_path / "ckpt")

    assert out.ran == [0, 1] and out.n_finished == 2
    for t in out.study.trials:
        ranks = t.user_attrs["ranks"]
        assert [r["node_rank"] for r in ranks] == [0, 1] and {r["world_size"] for r in ranks} == {2}
    node.release_nodes()
    assert agent.wait(timeout=30) == 0
    assert "fit 0: done" in log.read_text() and "fit 1: done" in log.read_text()
