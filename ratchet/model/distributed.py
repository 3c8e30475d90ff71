"""Multi-device training: one process per rank, started here, running only training.

Why not Lightning's own launchers, inside a flow:

* ``strategy="ddp"`` (``_SubprocessScriptLauncher``) starts each extra rank by
  re-running the launching command (``sys.argv``): inside a Prefect flow run,
  that is the CLI and the whole flow body again, a second flow run per rank.
* ``strategy="ddp_spawn"`` pickles the Trainer into spawned children and sends
  back only rank 0's last weights (loaded into the parent's module with
  ``strict=False``), ``trainer.state`` and ``callback_metrics``
  (``_MultiProcessingLauncher._recover_results_in_main_process``): callback state
  such as the epoch history, the epoch counter or early stopping's record stays
  in the children, and it cannot span nodes.

So, like torchrun on a module entry point: the launching process does the
preprocessing, writes a ``FitSpec`` (tensors, module path and arguments, trainer
settings, callbacks) to a folder and starts ``python -m ratchet.model.distributed
FOLDER`` once per local rank with the torchrun environment (``MASTER_ADDR``,
``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``NODE_RANK``).
Lightning sees ``LOCAL_RANK``, treats the processes as created externally and
launches nothing. Each rank imports torch, Lightning and ``ratchet.model``'s
tensor modules only: never the flow, the CLI or Prefect. Rank 0 writes the
fitted state dict, metrics and epoch history; every rank writes its batch
counts; the launching process rebuilds the module from the state dict.

Several nodes (``num_nodes > 1``): the same training must start on every node
with ``MASTER_ADDR``, ``MASTER_PORT`` and ``NODE_RANK`` set by the cluster; this
module starts the local ranks of its own node.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ratchet.model.loop import FitOutput, FitSpec, local_processes, run_fit
from ratchet.model.module import import_class

SPEC, RESULT = "spec.pt", "result.pt"


class DistributedFitError(RuntimeError):
    """A rank failed; the message ends with the tail of its log."""


def rank_strategy(strategy: str | None) -> str:
    """The strategy each externally started rank runs: ``auto`` and the spawning or
    forking variants of DDP become plain ``ddp`` (the processes exist already);
    anything else (``fsdp``, ``ddp_find_unused_parameters_true``, ...) is kept."""
    s = (strategy or "auto").strip()
    if s == "auto":
        return "ddp"
    if s.startswith("ddp"):
        for part in ("_spawn", "_fork", "_notebook"):
            s = s.replace(part, "")
    return s


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_env(local_rank: int, nproc: int, num_nodes: int, port: int, accelerator: str) -> dict[str, str]:
    env = dict(os.environ)
    node_rank = int(env.get("NODE_RANK", "0"))
    env.update(
        MASTER_ADDR=env.get("MASTER_ADDR", "127.0.0.1"),
        MASTER_PORT=env.get("MASTER_PORT", str(port)),
        NODE_RANK=str(node_rank),
        WORLD_SIZE=str(nproc * num_nodes),
        RANK=str(node_rank * nproc + local_rank),
        LOCAL_RANK=str(local_rank),
        LOCAL_WORLD_SIZE=str(nproc),
        # the rank resolves imports (a model class in any module) as this process does
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
    )
    if str(accelerator).lower() == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # as torchrun does: ranks sharing the CPU must not each start one thread per core
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    return env


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def launch(spec: FitSpec, *, timeout_s: float | None = None) -> FitOutput:
    """Fit ``spec`` on ``devices`` local processes (times ``num_nodes``) and return
    rank 0's fitted module, metrics and history in this process."""
    nproc = local_processes(spec.trainer.get("accelerator", "cpu"), spec.trainer.get("devices", 1))
    num_nodes = int(spec.trainer.get("num_nodes", 1))
    if num_nodes > 1 and not ("MASTER_ADDR" in os.environ and "NODE_RANK" in os.environ):
        raise RuntimeError(
            f"num_nodes={num_nodes}: start this training on every node with MASTER_ADDR, MASTER_PORT "
            "and NODE_RANK set by the cluster"
        )
    folder = Path(tempfile.mkdtemp(prefix="ratchet-fit-"))
    procs: list[tuple[subprocess.Popen, Path]] = []
    try:
        trainer = {**spec.trainer, "strategy": rank_strategy(spec.trainer.get("strategy"))}
        rank_spec = dataclasses.replace(spec, progress=False, trainer=trainer)
        torch.save(rank_spec, folder / SPEC)
        port = _free_port()
        for local_rank in range(nproc):
            log = folder / f"rank-{local_rank}.log"
            with open(log, "wb") as fh:
                p = subprocess.Popen(
                    [sys.executable, "-m", "ratchet.model.distributed", str(folder)],
                    env=_rank_env(local_rank, nproc, num_nodes, port, spec.trainer.get("accelerator", "cpu")),
                    stdout=fh, stderr=subprocess.STDOUT,
                )
            procs.append((p, log))
        _wait(procs, timeout_s)
        return _collect(folder, spec)
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _wait(procs: list[tuple[subprocess.Popen, Path]], timeout_s: float | None) -> None:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        codes = [p.poll() for p, _ in procs]
        failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            # a rank died: the others would wait in a collective forever
            time.sleep(2.0)
            for p, _ in procs:
                if p.poll() is None:
                    p.terminate()
            i, code = failed[0]
            raise DistributedFitError(f"training rank {i} exited with code {code}:\n{_tail(procs[i][1])}")
        if all(c == 0 for c in codes):
            return
        if deadline is not None and time.monotonic() > deadline:
            raise DistributedFitError(f"distributed training did not finish within {timeout_s} s")
        time.sleep(0.1)


def _collect(folder: Path, spec: FitSpec) -> FitOutput:
    result = torch.load(folder / RESULT, weights_only=False)
    module = import_class(spec.module_class)(**spec.module_args)
    module.load_state_dict(result["state_dict"])  # strict: every trained weight arrives
    ranks = [json.loads(p.read_text()) for p in sorted(folder.glob("rank-*.json"))]
    return FitOutput(module, result["metrics"], result["history"], sorted(ranks, key=lambda r: r["rank"]))


def main(argv: list[str] | None = None) -> int:
    folder = Path((argv if argv is not None else sys.argv[1:])[0])
    spec: FitSpec = torch.load(folder / SPEC, weights_only=False)
    out = run_fit(spec)
    rank = int(os.environ.get("RANK", "0"))
    info = {**out.ranks[0], "pid": os.getpid()}
    (folder / f"rank-{rank}.json").write_text(json.dumps(info))
    if rank == 0:
        state = {k: v.detach().cpu() for k, v in out.module.state_dict().items()}
        tmp = folder / f"{RESULT}.tmp"
        torch.save({"state_dict": state, "metrics": out.metrics, "history": out.history}, tmp)
        tmp.replace(folder / RESULT)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
