"""One training rank: ``python -m ratchet.training.model.distributed.rank_main FOLDER``.

Started by ``ranks.start_ranks`` (from ``launch`` on node 0, from the node agent
on the others) with the torchrun environment. It loads the ``FitSpec`` in
``FOLDER``, runs ``loop.run_fit`` (Lightning sees ``LOCAL_RANK``, treats the
process as created externally and launches nothing) and writes what it did:
``rank-<RANK>.json`` (batch and row counts, pid, host, weights digest) on every
rank, the fitted state dict, metrics and epoch history (``result.pt``) on rank 0.
It imports torch, Lightning and the tensor modules only: never the flow, the CLI
or Prefect.

Each rank dies with the process that started it (``PR_SET_PDEATHSIG`` on Linux):
a killed launcher or node agent leaves no rank training on its own.
"""

from __future__ import annotations

import io
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ratchet.core.files import atomic_write, atomic_write_json
from ratchet.training.model.distributed.ranks import RESULT, SPEC, weights_digest

if TYPE_CHECKING:
    from ratchet.training.model.distributed.loop import FitSpec


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
    # Lightning after the line above: a launcher that dies meanwhile takes this rank with it
    from ratchet.training.model.distributed.loop import run_fit

    folder = Path((argv if argv is not None else sys.argv[1:])[0])
    spec: FitSpec = torch.load(folder / SPEC, weights_only=False)
    out = run_fit(spec)
    rank = int(os.environ.get("RANK", "0"))
    info = {
        **out.ranks[0], "pid": os.getpid(), "node_rank": int(os.environ.get("NODE_RANK", "0")),
        "host": socket.gethostname(), "weights_sha256": weights_digest(out.module),
    }
    atomic_write_json(folder / f"rank-{rank}.json", info)
    if rank == 0:
        state = {k: v.detach().cpu() for k, v in out.module.state_dict().items()}
        buf = io.BytesIO()
        torch.save({"state_dict": state, "metrics": out.metrics, "history": out.history}, buf)
        atomic_write(folder / RESULT, buf.getvalue())
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
