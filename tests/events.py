"""Events as the Prefect server recorded them, for tests that check what the loop emitted."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


def recorded_events(name: str, match: Callable[[dict], bool], timeout_s: float = 30) -> list[dict]:
    """Events named ``name`` for which ``match(event)`` holds; waits until one arrives or
    ``timeout_s`` passes (events are written asynchronously)."""
    from prefect.settings import PREFECT_API_URL

    deadline = time.monotonic() + timeout_s
    while True:
        r = httpx.post(f"{PREFECT_API_URL.value()}/events/filter", json={"filter": {"event": {"name": [name]}}})
        found = [e for e in r.json()["events"] if match(e)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)
