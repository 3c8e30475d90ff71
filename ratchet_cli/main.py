"""The ``ratchet`` command.

Commands that change something run the matching Prefect flow (so every run
shows up in Prefect's history); read-only commands (``status``, ``history``,
``lineage``) and the emergency ``rollback`` go through the core library and
answer without starting an orchestrator. Prefect is imported only inside the
commands, after its environment points at the home folder and at the home's one Prefect
server (started by the first command that needs it, reused after; ``ratchet_cli.server``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ratchet_cli import backup, demo, intake, operations, release, serving, training
from ratchet_cli.common import (
    OPTS,
    debug_enabled,
    is_disk_error,
    report_user_error,
    user_error_types,
)

# plain help text (no rich markup), plain tracebacks (--debug)
app = typer.Typer(
    no_args_is_help=True, add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
    help="Continuous model improvement as Prefect flows: versioned data, gated promotion, canary, "
    "drift-driven retraining.\n\n"
    "Exit codes: 0 done; 1 a mistake, told in one line (a missing or unreadable file, a folder "
    "given as a file, an unknown format, a bad config key, no schema yet); 2 a batch that was "
    "read and failed its checks (ingest: rejected, its violations listed, main unchanged).",
)


@app.callback()
def global_options(
    config: Annotated[
        list[Path] | None,
        typer.Option(
            "--config", "-c", metavar="FILE",
            help="config YAML merged over the built-in defaults; repeat to merge several in order "
            "(default: RATCHET_CONFIG, else ./ratchet.yaml, else <home>/ratchet.yaml)",
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option("--home", metavar="DIR", help="home folder of the embedded stores (env RATCHET_HOME)"),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="show the traceback of an error (env RATCHET_DEBUG=1)")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="show Prefect's log of the flow run on stderr too "
                           "(always in <home>/logs/commands.log and the Prefect UI)"),
    ] = False,
) -> None:
    """Continuous model improvement as Prefect flows."""
    OPTS.debug = debug
    OPTS.verbose = verbose
    OPTS.config = [str(p) for p in config] if config else None
    if config:  # subcommands that load config themselves (`ratchet data`) see it too
        os.environ["RATCHET_CONFIG"] = os.pathsep.join(str(p.resolve()) for p in config)
    OPTS.home = str(home) if home else None
    if home:
        os.environ["RATCHET_HOME"] = str(home)
    # no Prefect here: the commands that run a flow find (or start) the home's Prefect server
    # themselves (common.forward_or_run, common.ensure_server), the read-only ones never touch it


def _mount_data_app() -> None:
    try:
        from ratchet_cli.data import app as data_app
    except ImportError:  # pragma: no cover - the data CLI ships with the package
        return
    app.add_typer(data_app, name="data", help="Branches, commits, diffs and merges of the data repository.")


# each stage's commands, at the top level (``ratchet ingest``, not ``ratchet intake ingest``)
for _stage in (intake, training, release, serving, operations, backup, demo):
    app.add_typer(_stage.app)
_mount_data_app()


def main(argv: list[str] | None = None) -> None:
    """The ``ratchet`` program: the typer app, with a user's mistake (a missing file, a bad
    config key, an unknown column, no schema, a bad home) told in one line on stderr and exit
    code 1; ``--debug`` or ``RATCHET_DEBUG=1`` shows the traceback instead."""
    args = sys.argv[1:] if argv is None else argv
    OPTS.argv = list(args)  # what a warm process is sent (ratchet_cli.warm)
    try:
        app(args=args, prog_name="ratchet")
    except user_error_types() as e:  # evaluated only when something was raised
        if debug_enabled():
            raise
        report_user_error(e, as_json="--json" in args)
        sys.exit(1)
    except OSError as e:  # a full or read-only disk: one line naming the path
        if debug_enabled() or not is_disk_error(e):
            raise
        report_user_error(e, as_json="--json" in args)
        sys.exit(1)
