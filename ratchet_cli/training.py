"""``ratchet train``: train and tune on a data commit, register the best model as challenger."""

from __future__ import annotations

from typing import Annotated

import typer

from ratchet_cli.common import (
    JsonOpt,
    emit,
    ensure_server,
    flow_result,
    forward_or_run,
)

app = typer.Typer()


@app.command()
def train(
    trials: Annotated[int | None, typer.Option(help="Optuna trials (default from config)")] = None,
    ref: Annotated[str | None, typer.Option(help="data ref: branch, tag or commit (default main)")] = None,
    window: Annotated[int | None, typer.Option(help="train on the last N batches")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train and tune on a data commit; register the best model as 'challenger'."""
    ensure_server(forward_or_run())
    from flows.train import train_flow

    result = flow_result(train_flow, as_json, "training failed", needs_schema=True, ref=ref, trials=trials,
                         window_batches=window)
    from ratchet.training.summary import headline

    if result.get("skipped"):
        emit(result, as_json, f"version {result['model_version']} already learnt data {result['data_commit'][:12]}")
        return
    emit(
        result, as_json,
        f"registered version {result['model_version']} as challenger "
        f"(data {result['data_commit'][:12]}, {headline(result['metrics'])})",
    )
