"""The runner's flow runs start warm: forks of a process that imported the flows once
(what ``ratchet_cli.warm`` does for commands, here for ``python -m deployments.serve``)."""

from __future__ import annotations

import contextlib
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

    starting: list[str] = []  # the flow run whose process run_flow_in_subprocess is starting

    class _RunContext:
        """The forkserver context, whose processes carry their flow run's name (``process_name``)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(context, name)

        @staticmethod
        def Process(target: Any = None, args: tuple = (), **kw: Any) -> Any:  # noqa: N802 (multiprocessing's name)
            name = process_name(starting[-1]) if starting else None
            return context.Process(target=_named, args=(name, target, *args), **kw)

    class _Forkserver:
        """``multiprocessing`` as the flow engine sees it: the forkserver context for any name."""

        def __getattr__(self, name: str) -> Any:
            return getattr(multiprocessing, name)

        @staticmethod
        def get_context(method: str | None = None) -> Any:
            return _RunContext()

    start = engine.run_flow_in_subprocess

    def run_flow_in_fork(flow: Any, flow_run: Any = None, *args: Any, **kw: Any) -> Any:
        starting.append(str(flow_run.id) if flow_run is not None else "")
        try:
            return start(flow, flow_run, *args, **kw)
        finally:
            starting.pop()

    import prefect.runner._starter_direct as direct  # "patch the module to override", as it says

    engine.multiprocessing = _Forkserver()  # type: ignore[assignment]
    direct.run_flow_in_subprocess = run_flow_in_fork
    _pickle_flows_by_reference()


def process_name(flow_run_id: str) -> str:
    """The name (``/proc/<pid>/comm``, what ``ps`` and ``top`` show) of the fork that runs
    ``flow_run_id``: a fork's environment (``/proc/<pid>/environ``) is its forkserver's, so the
    run id Prefect sets there for a spawned run cannot name it. 15 bytes at most (the kernel's
    limit): the id's last 11 hex digits, the random part of a UUIDv7."""
    return f"run-{flow_run_id.replace('-', '')[-11:]}"


def _named(name: str | None, target: Any, *args: Any) -> Any:
    """In the fork: take ``name``, then run Prefect's target."""
    if name:
        import ctypes

        with contextlib.suppress(OSError, AttributeError):  # a name is a convenience, never a failure
            ctypes.CDLL(None, use_errno=True).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    return target(*args)


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
