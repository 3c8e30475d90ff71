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
settings, callbacks) to a folder and starts ``python -m ratchet.training.model.distributed.rank_main
FOLDER`` once per local rank (``ranks.start_ranks``) with the torchrun environment
(``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``NODE_RANK``). Lightning sees ``LOCAL_RANK``, treats the processes as created
externally and launches nothing. Each rank imports torch, Lightning and the
tensor modules only: never the flow, the CLI or Prefect. Rank 0 writes the
fitted state dict, metrics and epoch history; every rank writes its batch
counts; the launching process rebuilds the module from the state dict.

Several nodes (``num_nodes > 1``): this process is node 0. It hands each fit to
the node agents of the other nodes (``ratchet.training.model.distributed.node``), which start their
local ranks with ``ranks.start_ranks`` too; their ranks' batch counts come back
through the coordination store, and a failure on any node fails the fit here
with that node's log tail.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from ratchet.core.files import free_port
from ratchet.training.model.distributed import ranks
from ratchet.training.model.distributed.loop import FitOutput, FitSpec
from ratchet.training.model.distributed.node import coordinator
from ratchet.training.model.module import import_class


def launch(spec: FitSpec, *, timeout_s: float | None = None) -> FitOutput:
    """Fit ``spec`` on ``devices`` local processes (times ``num_nodes``) and return
    rank 0's fitted module, metrics and history in this process."""
    accelerator = spec.trainer.get("accelerator", "cpu")
    nproc = ranks.local_processes(accelerator, spec.trainer.get("devices", 1))
    num_nodes = int(spec.trainer.get("num_nodes", 1))
    folder = Path(tempfile.mkdtemp(prefix="ratchet-fit-"))
    procs: ranks.Ranks = []
    try:
        trainer = {**spec.trainer, "strategy": ranks.rank_strategy(spec.trainer.get("strategy"))}
        rank_spec = dataclasses.replace(spec, progress=False, trainer=trainer)
        torch.save(rank_spec, folder / ranks.SPEC)
        if num_nodes > 1:
            others = coordinator(num_nodes).fit(
                folder, accelerator=accelerator, devices=spec.trainer.get("devices", 1), timeout_s=timeout_s
            )
            return _collect(folder, spec, others)
        procs = ranks.start_ranks(
            folder, nproc, 1, node_rank=0, master_addr=os.environ.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(os.environ.get("MASTER_PORT") or free_port()), accelerator=accelerator,
        )
        _wait(procs, timeout_s)
        return _collect(folder, spec)
    finally:
        ranks.stop_ranks(procs)
        shutil.rmtree(folder, ignore_errors=True)


def _wait(procs: ranks.Ranks, timeout_s: float | None) -> None:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        failed = ranks.first_failure(procs)
        if failed:
            # a rank died: the others would wait in a collective forever
            ranks.stop_ranks(procs, ranks.FAILURE_GRACE_S)
            i, code = failed
            log = ranks.tail(procs[i][1])
            raise ranks.DistributedFitError(f"training rank {i} exited with code {code}:\n{log}")
        if ranks.all_done(procs):
            return
        if deadline is not None and time.monotonic() > deadline:
            raise ranks.DistributedFitError(f"distributed training did not finish within {timeout_s} s")
        time.sleep(0.1)


def _collect(folder: Path, spec: FitSpec, other_ranks: list[dict] | None = None) -> FitOutput:
    result = torch.load(folder / ranks.RESULT, weights_only=False)
    module = import_class(spec.module_class)(**spec.module_args)
    module.load_state_dict(result["state_dict"])  # strict: every trained weight arrives
    infos = ranks.rank_infos(folder) + list(other_ranks or [])
    return FitOutput(module, result["metrics"], result["history"], sorted(infos, key=lambda r: r["rank"]))
