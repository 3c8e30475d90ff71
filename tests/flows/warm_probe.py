"""A flow for tests/flows/test_warm_runs.py: writes where it ran and what it found imported."""

from __future__ import annotations

import json
import os
import sys

from prefect import flow

from ratchet.runtime.options import RunOptions


@flow(name="warm-probe")
def warm_probe(out: str, options: RunOptions = RunOptions()) -> None:
    """A parameter typed by a pydantic model under postponed annotations, as the flows' ``options``:
    Prefect validates it against the annotation, resolved in the flow function's module."""
    with open(out, "w") as f:
        json.dump({"pid": os.getpid(), "ppid": os.getppid(), "preloaded": "flows.ingest" in sys.modules,
                   "options": type(options).__name__, "comm": open("/proc/self/comm").read().strip()}, f)
