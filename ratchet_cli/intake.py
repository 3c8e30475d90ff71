"""``ratchet init`` and ``ratchet ingest``: a project's schema, and batches into the data repository."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from ratchet_cli.common import (
    EXIT_REJECTED,
    JsonOpt,
    ctx_from_options,
    emit,
    ensure_server,
    fail,
    forward_or_run,
    run_flow,
)

app = typer.Typer()


# ------------------------------------------------------------------ commands
@app.command()
def init(
    schema_from: Annotated[Path | None, typer.Option(help="sample CSV/Parquet to infer the schema from")] = None,
    target: Annotated[str | None, typer.Option(help="label column of the sample")] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option(metavar="COL,...", help="columns the model will not see (comma-separated; repeatable)"),
    ] = None,
    feature: Annotated[
        list[str] | None,
        typer.Option(metavar="COL,...", help="columns to keep as features whatever inference says (comma-separated; repeatable)"),
    ] = None,
    task: Annotated[
        Literal["binary", "multiclass", "regression"] | None,
        typer.Option(help="the target's task (default: inferred from the sample)"),
    ] = None,
    force: Annotated[bool, typer.Option(help="infer the schema again over an existing one")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create the home folder and an empty data repository; optionally infer a schema.

    Writes <home>/ratchet.yaml too, unless it exists: the settings a project usually
    changes, for review next to the schema."""
    ctx = ctx_from_options()
    from ratchet.runtime.home import init_home
    from ratchet_cli.project import write_starter_config

    out = init_home(
        ctx, str(schema_from) if schema_from else None, target, force,
        ignore=_columns(ignore), feature=_columns(feature), task=task,
    )
    config = ctx.settings.project_config
    task_of_schema = getattr(ctx.schema.target, "task", None) if out.get("schema") else None
    out["model"] = ctx.cfg.model_name
    out["config"] = str(config)
    out["config_written"] = write_starter_config(config, ctx.cfg, task_of_schema)
    out["config_files"] = [str(f) for f in ctx.config_files]
    lines = [f"home {out['home']}, data repository '{out['repository']}' at {out['main'][:12]}"]
    if out.get("schema"):
        lines.append(f"schema: {out['schema']} ({len(out['columns'])} features); review it before ingesting")
    lines += [f"ignored: {column} ({reason})" for column, reason in (out.get("ignored") or {}).items()]
    lines.append(f"config: {config} " + ("written; review it too" if out["config_written"] else "(kept as it was)"))
    lines.append("config merged: " + " + ".join(_short(f) for f in ctx.config_files))
    emit(out, as_json, "\n".join(lines))


def _columns(values: list[str] | None) -> list[str]:
    """``--ignore a,b --ignore c``: ["a", "b", "c"]."""
    return [c.strip() for v in values or [] for c in v.split(",") if c.strip()]


def _short(path: Path) -> str:
    from ratchet.core.config import BUILTIN_CONFIG

    return "built-in defaults" if path == BUILTIN_CONFIG else str(path)


@app.command()
def ingest(path: Path, as_json: JsonOpt = False) -> None:
    """Write-audit-publish one batch (CSV or Parquet). Exit code 2 when the batch was read and
    rejected (its violations listed; main unchanged); exit 1 for a user's mistake (no such
    file, a folder, an unknown format, no permission to read it); exit 0 and status
    "duplicate", nothing written, when main already holds the same rows."""
    from ratchet.core.files import check_data_file

    check_data_file(path)  # before any flow run: a mistake, not a rejected batch
    ensure_server(forward_or_run())
    from flows.ingest import ingest_flow
    from ratchet.data.ingest import IngestRejected, describe

    ok, result = run_flow(ingest_flow, as_json, needs_schema=True, path=str(path))
    if ok:
        emit(result, as_json, describe(result))
        return
    if isinstance(result, IngestRejected):
        report = result.report
        if as_json:
            sys.stdout.write(json.dumps(report, default=str) + "\n")
        typer.secho(str(result), err=True, fg=typer.colors.RED)
        raise typer.Exit(EXIT_REJECTED)
    fail(f"ingest failed: {result}", as_json)
