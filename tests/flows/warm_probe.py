"""A flow for tests/flows/test_warm_runs.py: writes where it ran and what it found imported."""

from __future__ import annotations

import json
import os
import sys

from prefect import flow


@flow(name="warm-probe")
def warm_probe(out: str) -> None:
    with open(out, "w") as f:
        json.dump({"pid": os.getpid(), "ppid": os.getppid(), "preloaded": "flows.ingest" in sys.modules}, f)
