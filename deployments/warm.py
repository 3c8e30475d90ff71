"""The runner's flow runs start warm: forks of a process that imported the flows once
(what ``ratchet_cli.warm`` does for commands, here for ``python -m deployments.serve``)."""

from __future__ import annotations

import os
import sys
from typing import Any


def fork_flow_runs(preload: tuple[str, ...] | None = None) -> None:
    """Make this process's Prefect runner start each flow run as a fork of a warm
    multiprocessing forkserver, which imports ``preload`` (default: ``ratchet.core.imports.PRELOAD``,
    the list the CLI's warm process imports too) once, instead of a freshly spawned
    interpreter that imports them again (10-20 s on two cores, each run). Prefect's runner
    starts a served flow through ``prefect.flow_engine.run_flow_in_subprocess``, which asks
    ``multiprocessing`` for the ``spawn`` context by name; here that module's
    ``multiprocessing`` answers with the forkserver context instead, and nothing else of
    Prefect changes (the pickled call, the environment, the control channel, kill by pid).
    ``RATCHET_WARM=0`` keeps Prefect's spawn."""
    if os.environ.get("RATCHET_WARM", "").strip().lower() in ("0", "false", "no") or sys.platform != "linux":
        return
    import multiprocessing

    import prefect.flow_engine as engine

    from ratchet.core.imports import PRELOAD, warm_preload

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(warm_preload(PRELOAD if preload is None else preload))

    class _Forkserver:
        """``multiprocessing`` as the flow engine sees it: the forkserver context for any name."""

        def __getattr__(self, name: str) -> Any:
            return getattr(multiprocessing, name)

        @staticmethod
        def get_context(method: str | None = None) -> Any:
            return context

    engine.multiprocessing = _Forkserver()  # type: ignore[assignment]
