"""Multi-node training: node 0 hands each fit to a node agent on every other node.

The training flow runs once, in one process: node 0 (the pod of the Prefect flow
run). It prepares the data, runs the Optuna trials one after another and
registers the model. A fit with ``num_nodes > 1`` needs the same ranks started
on every node, so the other nodes run a small agent, ``python -m
ratchet.training.model.distributed.node``, that serves node 0's fits until node 0 releases it:

* Coordination goes through a ``torch.distributed.TCPStore`` on node 0 at
  ``MASTER_ADDR:RATCHET_COORD_PORT`` (default 29400, torchrun's rendezvous
  port). The ``ratchet-node`` entry point hosts it for node 0's whole command
  (see ``dispatch``); without it, the process of the first multi-node fit
  hosts it (``coordinator``).
* Agents join (``node/<i>/joined``) and beat (``node/<i>/beat``, a counter)
  from a thread; node 0 waits for every node before each fit and calls a node
  that stops beating for ``RATCHET_NODE_HEARTBEAT_TIMEOUT_S`` dead.
* Fit *k*: node 0 publishes the rank ``FitSpec`` (``fit/<k>/spec``, the bytes
  of ``torch.save``) and a header (``fit/<k>``: a fresh ``MASTER_PORT``, the
  node count, accelerator and devices), then starts its own ranks. Each agent
  starts its local ranks with ``NODE_RANK`` = its index and reports
  ``fit/<k>/node/<i>``: its ranks' batch counts, or the failing rank's log tail.
  Any failure sets ``fit/<k>/abort`` (the agents stop their ranks) and fails
  the fit on node 0 with what each node saw.
* When node 0's command ends it sets ``done``; each agent acknowledges
  (``node/<i>/left``) and exits 0. An agent that loses the store (node 0 died
  without releasing it) exits 1.

Optuna trials run one after another, so each trial's fit is one fit *k*; an
agent that joins late starts at the next fit. Nothing here imports Prefect.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from torch.distributed import DistError, TCPStore

from ratchet.core.files import free_port
from ratchet.training.model.distributed.ranks import (
    FAILURE_GRACE_S,
    SPEC,
    DistributedFitError,
    Ranks,
    all_done,
    first_failure,
    local_processes,
    rank_infos,
    start_ranks,
    stop_ranks,
    tail,
)

COORD_PORT_ENV, DEFAULT_COORD_PORT = "RATCHET_COORD_PORT", 29400
JOIN_TIMEOUT_ENV, DEFAULT_JOIN_TIMEOUT_S = "RATCHET_NODE_JOIN_TIMEOUT_S", 600.0
HEARTBEAT_TIMEOUT_ENV, DEFAULT_HEARTBEAT_TIMEOUT_S = "RATCHET_NODE_HEARTBEAT_TIMEOUT_S", 30.0
NUM_NODES_ENV = "RATCHET_NUM_NODES"  # node 0: overrides train.num_nodes (ratchet.runtime.context)
HOSTED_ENV = "RATCHET_COORD_HOSTED"  # set by ``ratchet-node`` for node 0's command: the store is up
POLL_S = 0.1
TAIL_CHARS = 3000

DONE, FITS = "done", "fits"


def _joined(i: int) -> str:
    return f"node/{i}/joined"


def _beat(i: int) -> str:
    return f"node/{i}/beat"


def _left(i: int) -> str:
    return f"node/{i}/left"


def _header(k: int) -> str:
    return f"fit/{k}"


def _spec(k: int) -> str:
    return f"fit/{k}/spec"


def _abort(k: int) -> str:
    return f"fit/{k}/abort"


def _report(k: int, i: int) -> str:
    return f"fit/{k}/node/{i}"


class NodeError(DistributedFitError):
    """A node did not join, stopped responding, or the nodes are misconfigured."""


@dataclass(frozen=True)
class NodeEnv:
    """Where node 0's coordination store is and how long to wait, from the environment
    (every node reads the same variables, set once by the job)."""

    addr: str | None
    port: int
    join_timeout_s: float
    heartbeat_timeout_s: float

    @classmethod
    def from_env(cls) -> NodeEnv:
        return cls(
            addr=os.environ.get("MASTER_ADDR") or None,
            port=int(os.environ.get(COORD_PORT_ENV) or DEFAULT_COORD_PORT),
            join_timeout_s=float(os.environ.get(JOIN_TIMEOUT_ENV) or DEFAULT_JOIN_TIMEOUT_S),
            heartbeat_timeout_s=float(os.environ.get(HEARTBEAT_TIMEOUT_ENV) or DEFAULT_HEARTBEAT_TIMEOUT_S),
        )

    @property
    def where(self) -> str:
        return f"{self.addr}:{self.port}"


def node_index() -> int | None:
    """This node's index: ``NODE_RANK``, else ``JOB_COMPLETION_INDEX`` (a Kubernetes
    Indexed Job sets it in every pod), else None."""
    for var in ("NODE_RANK", "JOB_COMPLETION_INDEX"):
        value = os.environ.get(var, "").strip()
        if value:
            return int(value)
    return None


def _connect(addr: str, port: int, timeout_s: float) -> TCPStore:
    """A client of the store at ``addr:port``, retrying (the server or its DNS name
    may not exist yet) until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        # TCPStore itself retries a failed connect once within its timeout
        attempt = max(0.5, min(left / 2, 5.0))
        try:
            store = TCPStore(addr, port, is_master=False, timeout=timedelta(seconds=attempt))
        except DistError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(POLL_S)
            continue
        store.set_timeout(timedelta(seconds=120))  # for ``get`` of keys known to exist
        return store


def _log(node: int, message: str) -> None:
    print(f"ratchet node {node}: {message}", file=sys.stderr, flush=True)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


# ------------------------------------------------------------------ node 0
class StoreHost:
    """The coordination store's server, held by node 0 for as long as the agents
    must be able to reach it; ``release`` tells them the training is over."""

    def __init__(self, port: int, join_timeout_s: float):
        self.port, self.join_timeout_s = port, join_timeout_s
        self.created = time.monotonic()
        try:
            self._server: TCPStore | None = TCPStore(
                "127.0.0.1", port, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=60)
            )
        except DistError as e:
            raise NodeError(
                f"cannot host the nodes' coordination store on port {port} ({_first_line(e)}): "
                f"set {COORD_PORT_ENV} to a free port, the same on every node"
            ) from None

    def release(self, num_nodes: int, ack_wait_s: float, dead: frozenset[int] = frozenset()) -> None:
        """Set ``done`` and keep the store up until every agent has acknowledged it,
        then close it. A node that has not joined yet (its pod still starting) is
        waited for until ``join_timeout_s`` after the store opened, since it would
        otherwise wait for a store that is gone and fail; a joined one that does not
        acknowledge within ``ack_wait_s``, or one known ``dead``, is not."""
        store = self._server
        if store is None:
            return
        try:
            store.set(DONE, "1")
            start = time.monotonic()
            while True:
                nodes = [i for i in range(1, num_nodes) if i not in dead]
                unjoined = [i for i in nodes if not store.check([_joined(i)])]
                unacked = [i for i in nodes if i not in unjoined and not store.check([_left(i)])]
                now = time.monotonic()
                if not unjoined and not unacked:
                    break
                if unjoined and now > self.created + self.join_timeout_s:
                    break
                if not unjoined and now > start + ack_wait_s:
                    break
                time.sleep(POLL_S)
        except DistError:
            pass
        finally:
            self._server = None


class Coordinator:
    """Node 0's side of every multi-node fit of this process: waits for the nodes,
    publishes each fit, runs node 0's ranks and follows every node to the end."""

    def __init__(self, num_nodes: int, env: NodeEnv, *, hosted: bool = False):
        if not env.addr:
            raise NodeError(
                f"num_nodes={num_nodes}: set MASTER_ADDR to this node's address (node 0, where the training "
                "flow runs), the same on every node, for the ranks and the node agents to reach it"
            )
        index = node_index()
        if index not in (None, 0):
            raise NodeError(
                f"NODE_RANK={index}: the training flow runs on node 0 only; node {index} runs the node agent "
                "(`ratchet-node` or `python -m ratchet.training.model.distributed.node`)"
            )
        self.num_nodes, self.env = num_nodes, env
        self.others = list(range(1, num_nodes))
        self.host = None if hosted else StoreHost(env.port, env.join_timeout_s)
        self.store = _connect("127.0.0.1", env.port, 30.0)
        self._lock = threading.Lock()  # one fit at a time: the agents serve them in order
        self._seen_lock = threading.Lock()
        self._beats: dict[int, int] = {}
        self._seen: dict[int, float] = {}  # node -> when its heartbeat last moved
        self._closed = threading.Event()
        self._created = time.monotonic()
        self._watcher = threading.Thread(target=self._watch, name="ratchet-node-heartbeats", daemon=True)
        self._watcher.start()

    # -- heartbeats
    def _watch(self) -> None:
        try:
            store = _connect("127.0.0.1", self.env.port, 30.0)
            while not self._closed.wait(POLL_S):
                for i in self.others:
                    if i in self._beats or store.check([_joined(i)]):
                        value = int(store.add(_beat(i), 0))
                        with self._seen_lock:
                            if self._beats.get(i) != value:
                                self._beats[i], self._seen[i] = value, time.monotonic()
        except RuntimeError:  # DistError: the store is gone, this coordinator is closing
            return

    def _silent_for(self, i: int) -> float | None:
        """Seconds since node ``i``'s heartbeat last moved; None: never joined."""
        with self._seen_lock:
            seen = self._seen.get(i)
        return None if seen is None else time.monotonic() - seen

    def _dead(self, nodes) -> dict[int, float]:
        silent = {i: self._silent_for(i) for i in nodes}
        return {i: s for i, s in silent.items() if s is not None and s > self.env.heartbeat_timeout_s}

    def _dead_message(self, i: int, silent: float) -> str:
        return f"node {i} stopped responding: no heartbeat for {silent:.0f} s (its node agent or its pod died)"

    def wait_for_nodes(self) -> None:
        """Every other node joined and alive; a node never seen is waited for until
        ``join_timeout_s`` after this coordinator started, a dead one fails at once."""
        deadline = self._created + self.env.join_timeout_s
        while True:
            dead = self._dead(self.others)
            if dead:
                raise NodeError("; ".join(self._dead_message(i, s) for i, s in dead.items()))
            missing = [i for i in self.others if self._silent_for(i) is None]
            if not missing:
                return
            if time.monotonic() > deadline:
                names = ", ".join(str(i) for i in missing)
                raise NodeError(
                    f"node(s) {names} of {self.num_nodes} did not join within {self.env.join_timeout_s:g} s: "
                    f"each must run the node agent (`ratchet-node` or `python -m ratchet.training.model.distributed.node`) with "
                    f"MASTER_ADDR={self.env.addr}, {COORD_PORT_ENV}={self.env.port} and NODE_RANK "
                    "(or JOB_COMPLETION_INDEX) set to its index"
                )
            time.sleep(POLL_S)

    # -- fits
    def fit(self, folder: Path, *, accelerator: str, devices, timeout_s: float | None = None) -> list[dict]:
        """Run the rank ``FitSpec`` saved in ``folder`` on every node; node 0's ranks
        write their results to ``folder``. Returns the other nodes' rank records."""
        with self._lock:
            if self._closed.is_set():
                raise NodeError("the nodes were released: this process trains on several nodes no more")
            self.wait_for_nodes()
            k = int(self.store.add(FITS, 0))
            port = free_port("")  # a fresh rendezvous port per fit, on every interface
            header = {"fit": k, "num_nodes": self.num_nodes, "port": port, "accelerator": accelerator,
                      "devices": devices}
            self.store.set(_spec(k), (Path(folder) / SPEC).read_bytes())
            self.store.set(_header(k), json.dumps(header))
            self.store.add(FITS, 1)
            nproc = local_processes(accelerator, devices)
            procs = start_ranks(
                Path(folder), nproc, self.num_nodes, node_rank=0, master_addr=str(self.env.addr),
                master_port=port, accelerator=accelerator,
            )
            try:
                return self._follow(k, procs, timeout_s)
            finally:
                stop_ranks(procs)
                try:
                    self.store.delete_key(_spec(k))  # every node has its copy (or the fit is over)
                except DistError:
                    pass

    def _reports(self, k: int, reports: dict[int, dict]) -> None:
        for i in self.others:
            if i not in reports and self.store.check([_report(k, i)]):
                reports[i] = json.loads(self.store.get(_report(k, i)))

    def _follow(self, k: int, procs: Ranks, timeout_s: float | None) -> list[dict]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        reports: dict[int, dict] = {}
        while True:
            self._reports(k, reports)
            local = first_failure(procs)
            failed = [i for i, r in reports.items() if not r["ok"]]
            dead = self._dead(i for i in self.others if i not in reports)
            if local or failed or dead:
                raise self._failure(k, procs, reports)
            if all_done(procs) and len(reports) == len(self.others):
                return [rank for i in self.others for rank in reports[i]["ranks"]]
            if deadline is not None and time.monotonic() > deadline:
                self.store.set(_abort(k), "timeout")
                waiting = [str(i) for i in self.others if i not in reports]
                raise NodeError(
                    f"multi-node fit {k} did not finish within {timeout_s:g} s"
                    + (f" (no report from node(s) {', '.join(waiting)})" if waiting else "")
                )
            time.sleep(POLL_S)

    def _failure(self, k: int, procs: Ranks, reports: dict[int, dict]) -> NodeError:
        """Stop the fit everywhere, give every node the time to say what it saw (or
        to be found dead), and name them: the first failure seen is often only a
        consequence (a rank whose peer vanished), so every node's account is kept."""
        self.store.set(_abort(k), "failed")
        deadline = time.monotonic() + self.env.heartbeat_timeout_s + 1.0
        while time.monotonic() < deadline:
            self._reports(k, reports)
            pending = [i for i in self.others if i not in reports]
            if not pending or set(pending) <= set(self._dead(pending)):
                break
            time.sleep(POLL_S)
        settle = time.monotonic() + FAILURE_GRACE_S  # node 0's ranks: time to fail on their own and log why
        while time.monotonic() < settle and any(p.poll() is None for p, _ in procs):
            time.sleep(POLL_S)
        local = first_failure(procs)  # before stopping them: a rank stopped here is no failure of its own
        stop_ranks(procs)
        pending = [i for i in self.others if i not in reports]
        dead = self._dead(pending)
        summary = [self._dead_message(i, s) for i, s in dead.items()]
        details = []
        for i, r in sorted(reports.items()):
            if not r["ok"] and not r.get("aborted"):
                summary.append(f"node {i}: {r['error']}")
                details.append(f"--- node {i}, {r['error']} (log tail) ---\n{r.get('tail', '')}")
        if local is not None:
            i, code = local
            summary.append(f"node 0: training rank {i} exited with code {code}")
            details.append(f"--- node 0, training rank {i} (log tail) ---\n{tail(procs[i][1], TAIL_CHARS)}")
        silent = [str(i) for i in pending if i not in dead]
        if silent:
            summary.append(f"no report from node(s) {', '.join(silent)}")
        return NodeError(
            f"multi-node fit {k} ({self.num_nodes} nodes) failed: " + "; ".join(summary or ["stopped"])
            + "".join(f"\n{d}" for d in details)
        )

    def close(self) -> None:
        dead = frozenset(self._dead(self.others))
        self._closed.set()
        self._watcher.join(timeout=5)  # its store client must not be torn down by the interpreter's exit
        if self.host is not None:
            self.host.release(self.num_nodes, self.env.heartbeat_timeout_s + 1.0, dead)
        self.store = None  # type: ignore[assignment]


_coordinator: Coordinator | None = None
_coordinator_lock = threading.Lock()


def coordinator(num_nodes: int) -> Coordinator:
    """This process's coordinator of ``num_nodes`` nodes, created at the first
    multi-node fit and kept for the next ones (trials, retries) until
    ``release_nodes`` or the end of the process."""
    global _coordinator
    with _coordinator_lock:
        if _coordinator is not None and _coordinator.num_nodes != num_nodes:
            raise NodeError(
                f"num_nodes={num_nodes}, but this process already trains on {_coordinator.num_nodes} nodes"
            )
        if _coordinator is None:
            _coordinator = Coordinator(num_nodes, NodeEnv.from_env(), hosted=os.environ.get(HOSTED_ENV) == "1")
            atexit.register(release_nodes)
        return _coordinator


def release_nodes() -> None:
    """Tell the node agents that this process trains no more (they exit 0), when it
    hosts their store; under ``ratchet-node`` that happens when the command ends."""
    global _coordinator
    with _coordinator_lock:
        c, _coordinator = _coordinator, None
    if c is not None:
        c.close()


# ------------------------------------------------------------------ nodes 1..N-1
def serve(node: int, env: NodeEnv | None = None) -> int:
    """The node agent: run node 0's fits on this node until node 0 releases it."""
    env = env or NodeEnv.from_env()
    if node < 1:
        raise NodeError("node 0 runs the training flow, not the node agent (NODE_RANK / JOB_COMPLETION_INDEX is 0)")
    if not env.addr:
        raise NodeError(f"node {node}: MASTER_ADDR must name node 0 (where the training flow runs)")
    _log(node, f"joining node 0 at {env.where}")
    try:
        store = _connect(env.addr, env.port, env.join_timeout_s)
    except DistError:
        raise NodeError(
            f"node {node}: node 0's coordination store at {env.where} did not answer within "
            f"{env.join_timeout_s:g} s (is node 0 running its command under `ratchet-node`, with the same "
            f"MASTER_ADDR and {COORD_PORT_ENV}?)"
        ) from None
    stop = threading.Event()
    beating = threading.Thread(target=_heartbeat, args=(env, node, stop), name="ratchet-node-heartbeat", daemon=True)
    try:
        store.set(_joined(node), json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
        beating.start()
        k = int(store.add(FITS, 0))
        while _next_fit(store, k):
            report = _serve_fit(store, node, k, env)
            store.set(_report(k, node), json.dumps(report))
            _log(node, f"fit {k}: " + ("done" if report["ok"] else report["error"]))
            if report.get("released"):
                break
            k += 1
        store.set(_left(node), "1")
        _log(node, "released by node 0")
        return 0
    except DistError as e:
        raise NodeError(
            f"node {node}: lost node 0's coordination store at {env.where} ({_first_line(e)}): "
            "node 0 ended without releasing the nodes"
        ) from None
    finally:
        stop.set()
        if beating.is_alive():
            beating.join(timeout=5)  # its store client must not be torn down by the interpreter's exit


def _heartbeat(env: NodeEnv, node: int, stop: threading.Event) -> None:
    interval = max(0.2, min(2.0, env.heartbeat_timeout_s / 5))
    try:
        store = _connect(str(env.addr), env.port, 30.0)
        while True:
            store.add(_beat(node), 1)
            if stop.wait(interval):
                return
    except DistError:
        return  # the agent's main loop sees the store go too


def _next_fit(store: TCPStore, k: int) -> bool:
    """Wait for fit ``k`` (True) or for node 0 to release the nodes (False)."""
    while True:
        if store.check([_header(k)]):
            return True
        if store.check([DONE]):
            return False
        time.sleep(POLL_S)


def _serve_fit(store: TCPStore, node: int, k: int, env: NodeEnv) -> dict:
    header = json.loads(store.get(_header(k)))
    n = int(header["num_nodes"])
    if node >= n:
        raise NodeError(f"node {node}: the training runs on {n} nodes (0..{n - 1}); check NODE_RANK and num_nodes")
    if store.check([_abort(k)]) or not store.check([_spec(k)]):
        return {"ok": False, "aborted": True, "error": "stopped by node 0 before it started here"}
    folder = Path(tempfile.mkdtemp(prefix=f"ratchet-node{node}-fit{k}-"))
    procs: Ranks = []
    try:
        (folder / SPEC).write_bytes(store.get(_spec(k)))
        nproc = local_processes(header["accelerator"], header["devices"])
        procs = start_ranks(
            folder, nproc, n, node_rank=node, master_addr=str(env.addr), master_port=int(header["port"]),
            accelerator=header["accelerator"],
        )
        _log(node, f"fit {k}: ranks {node * nproc}..{node * nproc + nproc - 1} of {n * nproc} started")
        while True:
            failed = first_failure(procs)
            if failed:
                stop_ranks(procs, FAILURE_GRACE_S)
                i, code = failed
                return {"ok": False, "error": f"training rank {node * nproc + i} exited with code {code}",
                        "tail": tail(procs[i][1], TAIL_CHARS)}
            if all_done(procs):
                return {"ok": True, "ranks": rank_infos(folder)}
            if store.check([_abort(k)]):
                stop_ranks(procs)
                return {"ok": False, "aborted": True, "error": "stopped by node 0"}
            if store.check([DONE]):
                stop_ranks(procs)
                return {"ok": False, "aborted": True, "released": True, "error": "node 0 released the nodes"}
            time.sleep(POLL_S)
    finally:
        stop_ranks(procs)
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m ratchet.training.model.distributed.node``: the node agent of this node (``NODE_RANK``
    or ``JOB_COMPLETION_INDEX``, at least 1)."""
    argparse.ArgumentParser(
        prog="python -m ratchet.training.model.distributed.node",
        description="Serve node 0's multi-node fits on this node. Environment: MASTER_ADDR, "
        f"{COORD_PORT_ENV}, NODE_RANK or JOB_COMPLETION_INDEX, {JOIN_TIMEOUT_ENV}, {HEARTBEAT_TIMEOUT_ENV}.",
    ).parse_args(argv)
    index = node_index()
    try:
        if index is None:
            raise NodeError("set NODE_RANK (or JOB_COMPLETION_INDEX) to this node's index, 1 or more")
        return serve(index)
    except NodeError as e:
        print(f"ratchet node: {e}", file=sys.stderr, flush=True)
        return 1


# ------------------------------------------------------------------ entry point
def dispatch(argv: list[str] | None = None) -> int:
    """``ratchet-node [--num-nodes N] [--] COMMAND...``: the entry point of every pod
    of a multi-node training. Node 0 runs COMMAND (the Prefect flow run) while
    hosting the coordination store, and releases the agents when COMMAND ends,
    however it ends (even when the flow decides not to train); its exit status is
    COMMAND's. Every other node runs the node agent and ignores COMMAND."""
    parser = argparse.ArgumentParser(prog="ratchet-node", description=dispatch.__doc__)
    parser.add_argument("--num-nodes", type=int, default=None, help=f"nodes of the training (default: ${NUM_NODES_ENV}, else 1)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="node 0's command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    num_nodes = args.num_nodes or int(os.environ.get(NUM_NODES_ENV) or 1)
    index = node_index() or 0
    if not 0 <= index < num_nodes:
        print(f"ratchet-node: node index {index} is outside 0..{num_nodes - 1} (--num-nodes {num_nodes})", file=sys.stderr)
        return 2
    if index > 0:
        return main([])
    if not command:
        print("ratchet-node: node 0 needs the command to run (the flow run)", file=sys.stderr)
        return 2
    env = {**os.environ, NUM_NODES_ENV: str(num_nodes)}
    if num_nodes == 1:
        os.execvpe(command[0], command, env)
    node_env = NodeEnv.from_env()
    if not node_env.addr:
        print("ratchet-node: MASTER_ADDR must name node 0 (this node), the same on every node", file=sys.stderr)
        return 2
    try:
        host = StoreHost(node_env.port, node_env.join_timeout_s)
    except NodeError as e:
        print(f"ratchet-node: {e}", file=sys.stderr)
        return 2
    child = subprocess.Popen(command, env={**env, HOSTED_ENV: "1"})
    # the pod's stop signal (a cancelled flow run) is for the flow run, which handles it
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: child.send_signal(s))
    code = child.wait()
    host.release(num_nodes, node_env.heartbeat_timeout_s + 1.0)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
