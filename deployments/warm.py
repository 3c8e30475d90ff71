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
    _pickle_flows_by_reference()


def _pickle_flows_by_reference() -> None:
    """A flow handed to a fork is pickled as its module and name, and the fork takes the flow its
    forkserver imported. Why: cloudpickle sends a flow's function by value (its module's attribute
    of that name is the ``Flow``, not the function), rebuilding the function's globals from the names
    its body uses; an annotation postponed by ``from __future__ import annotations`` (``options:
    RunOptions``) is not one of them, and Prefect's validation of the parameters failed with
    "not fully defined". Every task the body calls was copied by value too. A flow that is not a
    module attribute (made in a function) is pickled as before."""
    import copyreg

    from prefect import Flow

    def reduce(flow: Flow) -> Any:
        module = sys.modules.get(getattr(flow.fn, "__module__", ""))
        name = getattr(flow.fn, "__name__", "")
        if module is not None and getattr(module, name, None) is flow:
            return _module_flow, (module.__name__, name)
        return flow.__reduce_ex__(4)

    copyreg.pickle(Flow, reduce)


def _module_flow(module: str, name: str) -> Any:
    """The flow ``module.name`` where it is unpickled (in a fork: imported already)."""
    import importlib

    return getattr(importlib.import_module(module), name)
