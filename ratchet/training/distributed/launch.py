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
settings, callbacks) to a folder and starts ``python -m ratchet.training.distributed.launch
FOLDER`` once per local rank with the torchrun environment (``MASTER_ADDR``,
``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``NODE_RANK``).
Lightning sees ``LOCAL_RANK``, treats the processes as created externally and
launches nothing. Each rank imports torch, Lightning and ``ratchet.model``'s
tensor modules only: never the flow, the CLI or Prefect. Rank 0 writes the
fitted state dict, metrics and epoch history; every rank writes its batch
counts; the launching process rebuilds the module from the state dict.

Several nodes (``num_nodes > 1``): this process is node 0. It hands each fit to
the node agents of the other nodes (``ratchet.training.distributed.node``), which start their
local ranks with this module's ``start_ranks``; their ranks' batch counts come
back through the coordination store, and a failure on any node fails the fit
here with that node's log tail.

Each rank process dies with the process that started it (``PR_SET_PDEATHSIG``
on Linux): a killed launcher or node agent leaves no rank training on its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ratchet.training.distributed.loop import FitOutput, FitSpec

# Lightning is imported by the ranks (``main``) and the launching process, never by
# a node agent (``ratchet.training.distributed.node``), which only starts and watches ranks.

SPEC, RESULT = "spec.pt", "result.pt"
FAILURE_GRACE_S = 2.0  # after a rank fails, the others get this long to fail on their own and log why

Ranks = list[tuple[subprocess.Popen, Path]]  # one (process, log file) per local rank


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


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (``""``: on every interface, for ranks on other nodes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _rank_env(
    local_rank: int, nproc: int, num_nodes: int, *, node_rank: int, master_addr: str, master_port: int,
    accelerator: str,
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MASTER_ADDR=master_addr,
        MASTER_PORT=str(master_port),
        NODE_RANK=str(node_rank),
        WORLD_SIZE=str(nproc * num_nodes),
        RANK=str(node_rank * nproc + local_rank),
        LOCAL_RANK=str(local_rank),
        LOCAL_WORLD_SIZE=str(nproc),
        # the rank resolves imports (a model class in any module) as this process does
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
        RATCHET_PARENT_PID=str(os.getpid()),
    )
    if str(accelerator).lower() == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # as torchrun does: ranks sharing the CPU must not each start one thread per core
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    return env


def start_ranks(
    folder: Path, nproc: int, num_nodes: int, *, node_rank: int, master_addr: str, master_port: int,
    accelerator: str,
) -> Ranks:
    """Start this node's ``nproc`` ranks on the ``FitSpec`` in ``folder``; each logs
    to ``folder/rank-<local rank>.log``."""
    procs: Ranks = []
    for local_rank in range(nproc):
        log = Path(folder) / f"rank-{local_rank}.log"
        env = _rank_env(
            local_rank, nproc, num_nodes, node_rank=node_rank, master_addr=master_addr,
            master_port=master_port, accelerator=accelerator,
        )
        with open(log, "wb") as fh:
            p = subprocess.Popen(
                [sys.executable, "-m", "ratchet.training.distributed.launch", str(folder)],
                env=env, stdout=fh, stderr=subprocess.STDOUT,
            )
        procs.append((p, log))
    return procs


def first_failure(procs: Ranks) -> tuple[int, int] | None:
    """(local rank, exit code) of the first rank that exited with an error, if any."""
    for i, (p, _) in enumerate(procs):
        code = p.poll()
        if code not in (None, 0):
            return i, int(code)
    return None


def all_done(procs: Ranks) -> bool:
    return all(p.poll() == 0 for p, _ in procs)


def stop_ranks(procs: Ranks, grace_s: float = 0.0) -> None:
    """Terminate the ranks still running (after ``grace_s``), then kill what is left."""
    deadline = time.monotonic() + grace_s
    while grace_s and time.monotonic() < deadline and any(p.poll() is None for p, _ in procs):
        time.sleep(0.1)
    for p, _ in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 5.0
    for p, _ in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def rank_infos(folder: Path) -> list[dict]:
    """What each rank of this node wrote: rank, world size, batch and row counts, pid."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("rank-*.json"))]


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of the module's parameters (names and bytes): DDP keeps them equal on
    every rank, so equal digests across ranks and nodes mean one synchronised fit."""
    h = hashlib.sha256()
    for name, p in module.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def local_processes(accelerator: str, devices: int | str | list[int]) -> int:
    """How many processes Lightning would run on this node for ``accelerator`` and
    ``devices`` (``auto``/-1: every device of the accelerator; CPU auto is 1)."""
    if isinstance(devices, list | tuple):
        return max(1, len(devices))
    if isinstance(devices, str):
        d = devices.strip()
        if "," in d:
            return len([p for p in d.split(",") if p.strip()])
        if d.lstrip("-").isdigit():
            devices = int(d)
        elif d != "auto":
            raise ValueError(f"devices must be an int, a list, 'auto' or '0,1,...', got {devices!r}")
    if isinstance(devices, int) and devices > 0:
        return devices
    acc = str(accelerator).lower()
    if acc in ("gpu", "cuda", "auto"):
        from lightning.pytorch.accelerators import CUDAAccelerator

        n = CUDAAccelerator.auto_device_count() if CUDAAccelerator.is_available() else 0
        if n:
            return n
        if acc == "auto":
            return 1
        raise RuntimeError(f"accelerator={accelerator!r} with devices={devices!r} but no CUDA device is visible")
    return 1


def launch(spec: FitSpec, *, timeout_s: float | None = None) -> FitOutput:
    """Fit ``spec`` on ``devices`` local processes (times ``num_nodes``) and return
    rank 0's fitted module, metrics and history in this process."""
    accelerator = spec.trainer.get("accelerator", "cpu")
    nproc = local_processes(accelerator, spec.trainer.get("devices", 1))
    num_nodes = int(spec.trainer.get("num_nodes", 1))
    folder = Path(tempfile.mkdtemp(prefix="ratchet-fit-"))
    procs: Ranks = []
    try:
        trainer = {**spec.trainer, "strategy": rank_strategy(spec.trainer.get("strategy"))}
        rank_spec = dataclasses.replace(spec, progress=False, trainer=trainer)
        torch.save(rank_spec, folder / SPEC)
        if num_nodes > 1:
            from ratchet.training.distributed.node import coordinator

            others = coordinator(num_nodes).fit(
                folder, accelerator=accelerator, devices=spec.trainer.get("devices", 1), timeout_s=timeout_s
            )
            return _collect(folder, spec, others)
        procs = start_ranks(
            folder, nproc, 1, node_rank=0, master_addr=os.environ.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(os.environ.get("MASTER_PORT") or free_port()), accelerator=accelerator,
        )
        _wait(procs, timeout_s)
        return _collect(folder, spec)
    finally:
        stop_ranks(procs)
        shutil.rmtree(folder, ignore_errors=True)


def _wait(procs: Ranks, timeout_s: float | None) -> None:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        failed = first_failure(procs)
        if failed:
            # a rank died: the others would wait in a collective forever
            stop_ranks(procs, FAILURE_GRACE_S)
            i, code = failed
            raise DistributedFitError(f"training rank {i} exited with code {code}:\n{tail(procs[i][1])}")
        if all_done(procs):
            return
        if deadline is not None and time.monotonic() > deadline:
            raise DistributedFitError(f"distributed training did not finish within {timeout_s} s")
        time.sleep(0.1)


def _collect(folder: Path, spec: FitSpec, other_ranks: list[dict] | None = None) -> FitOutput:
    from ratchet.training.distributed.loop import FitOutput
    from ratchet.training.model.module import import_class

    result = torch.load(folder / RESULT, weights_only=False)
    module = import_class(spec.module_class)(**spec.module_args)
    module.load_state_dict(result["state_dict"])  # strict: every trained weight arrives
    ranks = rank_infos(folder) + list(other_ranks or [])
    return FitOutput(module, result["metrics"], result["history"], sorted(ranks, key=lambda r: r["rank"]))


def _die_with_parent() -> None:
    """Linux: this rank gets SIGKILL when the process that started it dies, so a
    killed node agent or flow process takes its ranks with it, as a dying pod does."""
    parent = int(os.environ.get("RATCHET_PARENT_PID", "0") or 0)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    _die_with_parent()
    from ratchet.training.distributed.loop import run_fit

    folder = Path((argv if argv is not None else sys.argv[1:])[0])
    spec: FitSpec = torch.load(folder / SPEC, weights_only=False)
    out = run_fit(spec)
    rank = int(os.environ.get("RANK", "0"))
    info = {
        **out.ranks[0], "pid": os.getpid(), "node_rank": int(os.environ.get("NODE_RANK", "0")),
        "host": socket.gethostname(), "weights_sha256": weights_digest(out.module),
    }
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
