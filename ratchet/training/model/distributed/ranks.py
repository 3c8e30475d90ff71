"""Rank processes: start them, watch them, stop them, read what they wrote.

The leaf of ``ratchet.training.model.distributed``: the launching process (``launch``)
and a node agent (``node``) both start their local ranks with ``start_ranks``;
each rank runs ``python -m ratchet.training.model.distributed.rank_main FOLDER`` with the
torchrun environment (``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``NODE_RANK``). It imports torch only (Lightning only to count
CUDA devices), never the fit loop, so a node agent stays light.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

SPEC, RESULT = "spec.pt", "result.pt"  # in a fit's folder: the rank FitSpec, rank 0's fitted state
RANK_MODULE = "ratchet.training.model.distributed.rank_main"  # what each rank process runs (``python -m``)
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
                [sys.executable, "-m", RANK_MODULE, str(folder)],
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
