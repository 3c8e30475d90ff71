"""Progress bars on the terminal for the long steps the core reports (``ratchet.core.progress``):
the chunks of a big ingest, the trials and epochs of a training, the chunks of a scoring run.

Drawn with rich (the ecosystem's usual choice; Prefect and typer already bring it) on stderr,
only when stderr is a terminal: piped or redirected, a command's stderr stays its one line.
The bars are transient: once a command ends, only its summary line is left.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def terminal_bars() -> Iterator[None]:
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from ratchet.core.progress import Step, listen

    bars = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[unit]}"), TimeElapsedColumn(),
                    console=Console(file=sys.stderr), transient=True, redirect_stdout=False,
                    redirect_stderr=False)
    tasks: dict[int, object] = {}

    def show(step: Step, ended: bool) -> None:
        key = id(step.key)
        if ended:
            if key in tasks:
                bars.remove_task(tasks.pop(key))
            return
        if key not in tasks:
            tasks[key] = bars.add_task(step.what, total=step.total, unit=step.unit)
        bars.update(tasks[key], completed=step.done, total=step.total)

    previous = listen(show)
    try:
        with bars:
            yield
    finally:
        listen(previous)
