"""What every command shares: the global options, output, errors and running a flow."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ratchet.core.settings import Settings, apply_prefect_env

EXIT_REJECTED = 2


class _Opts:
    config: list[str] | None = None
    home: str | None = None
    overrides: dict[str, Any] | None = None


OPTS = _Opts()
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]


def home_settings() -> Settings:
    return Settings(home=Path(OPTS.home)) if OPTS.home else Settings()


def ctx_from_options():
    from ratchet.runtime.context import load_context

    return load_context(OPTS.config, OPTS.overrides, OPTS.home)


def emit(result: dict[str, Any], as_json: bool, human: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
    else:
        typer.echo(human)


def fail(message: str, as_json: bool, code: int = 1, **extra: Any) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"error": message, **extra}, default=str) + "\n")
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def run_flow(flow_fn, as_json: bool, **params: Any) -> tuple[bool, Any]:
    """Run a flow in this process; return (ok, result or exception).

    With ``--json`` anything the flow prints to stdout goes to stderr, so
    stdout carries exactly one JSON object.
    """
    from ratchet.runtime.options import RunOptions

    options = RunOptions(config_files=OPTS.config, overrides=OPTS.overrides, home=OPTS.home)
    redirect = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    with redirect:
        state = flow_fn(**params, options=options, return_state=True)
    if state.is_completed():
        result = state.result()
        return True, result.to_dict() if hasattr(result, "to_dict") else result
    return False, state.result(raise_on_failure=False)


def prefect_home() -> None:
    """Point Prefect's environment at the home; call before the first import of a flow."""
    apply_prefect_env(home_settings().ensure())


