"""Progress of a long step (chunks of an ingest or a scoring run, epochs and trials of a
training), for whoever shows it.

The core says how far it got (``with step("ingest: checking", unit="rows") as s: s.advance(n)``);
nobody listens by default, so this costs a function call. The CLI listens on a terminal and
draws bars (``ratchet_cli/progress.py``, with rich). Plain standard library; one listener per
process, not per context: Prefect runs a flow's tasks in worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

# (the step, or None when it ended) -> None
Listener = Callable[["Step", bool], None]

_listener: Listener | None = None
_lock = threading.Lock()


def listen(listener: Listener | None) -> Listener | None:
    """Set the process's listener (None: nobody); returns the one it replaces."""
    global _listener
    with _lock:
        previous, _listener = _listener, listener
    return previous


@dataclass
class Step:
    what: str
    total: float | None = None  # None: not known ahead (a CSV's rows)
    unit: str = ""
    done: float = 0
    key: object = field(default_factory=object)

    def advance(self, n: float = 1) -> None:
        self.done += n
        self._tell(False)

    def update(self, done: float, total: float | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        self._tell(False)

    def _tell(self, ended: bool) -> None:
        listener = _listener
        if listener is not None:
            listener(self, ended)

    def __enter__(self) -> Step:
        self._tell(False)
        return self

    def __exit__(self, *exc) -> None:
        self._tell(True)


def step(what: str, total: float | None = None, unit: str = "") -> Step:
    """A step to report on, as a context manager: started on entry, ended on exit."""
    return Step(what, total, unit)
