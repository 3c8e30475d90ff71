"""``ratchet serve``, ``relay`` and ``score``: the inference service, the ingest relay, batch scoring."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ratchet_cli.common import (
    JsonOpt,
    ctx_from_options,
    emit,
    ensure_server,
    fail,
    flow_result,
    forward_or_run,
    home_settings,
    use_running_prefect,
)

app = typer.Typer()


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="port (default from config)")] = None,
    host: Annotated[str | None, typer.Option(help="host (default from config)")] = None,
) -> None:
    """HTTP service: POST /predict, GET /health, GET /metrics. Its /admin routes take the
    home's admin token (run/admin-token, made on first use) unless RATCHET_ADMIN_TOKEN is set."""
    from ratchet.runtime.stack import admin_token, token_file
    from ratchet.serving.__main__ import build_app, run_server, tune_process

    settings = home_settings().ensure()
    if not os.environ.get("RATCHET_ADMIN_TOKEN"):  # as `ratchet up`: the admin routes are never open
        os.environ["RATCHET_ADMIN_TOKEN"] = admin_token(settings)
        typer.echo(f"admin token: {token_file(settings)} (send Authorization: Bearer <it> to /admin routes)", err=True)
    ctx, application = build_app()
    tune_process(application)  # models loaded, GC frozen, short GIL switch: see ratchet.serving
    run_server(application, host or ctx.cfg.serving.host, port or ctx.cfg.serving.port, log_level="info")


@app.command()
def relay(
    port: Annotated[int, typer.Option(help="port for lakeFS webhooks")] = 8780,
    host: Annotated[str, typer.Option(help="host")] = "127.0.0.1",
) -> None:
    """Receive lakeFS post-merge webhooks and send them on as Prefect events."""
    import uvicorn

    from ratchet.data.relay import create_relay_app

    api = os.environ.get("PREFECT_API_URL") if use_running_prefect() else None
    if not api:
        fail("no Prefect server: set PREFECT_API_URL (or run `ratchet up`)", False)
    ctx = ctx_from_options()
    uvicorn.run(
        create_relay_app(api, ctx.cfg.data.main_branch, os.environ.get("RATCHET_RELAY_TOKEN")),
        host=host, port=port,
    )


@app.command()
def score(
    path: Annotated[Path | None, typer.Argument(help="CSV or Parquet file to score")] = None,
    ref: Annotated[str | None, typer.Option(help="score the published batches at this data ref instead")] = None,
    version: Annotated[str | None, typer.Option(help="model version (default: the champion)")] = None,
    out: Annotated[Path | None, typer.Option(help="also write the predictions here (.csv or .parquet)")] = None,
    chunk_rows: Annotated[int, typer.Option(help="rows per chunk")] = 100_000,
    as_json: JsonOpt = False,
) -> None:
    """Score a file or a data commit in chunks; predictions (row id, model version, data commit)
    go to the data repository under predictions/ on the 'predictions' branch, and to --out."""
    ensure_server(forward_or_run())
    from flows.score import score_flow

    if (path is None) == (ref is None):
        fail("score a FILE or --ref COMMIT (one of them)", as_json)
    result = flow_result(score_flow, as_json, "scoring failed", path=str(path) if path else None, ref=ref,
                         version=version, out=str(out) if out else None, chunk_rows=chunk_rows)
    emit(result, as_json, f"scored {result['rows']} rows with version {result['model_version']} "
         f"(data {result['data_commit'][:19]}): {result['repo_path']} on {result['repo_branch']}"
         + (f", {result['out']}" if result["out"] else ""))
