"""``ratchet demo``: the whole loop on synthetic data, inline or through the event-driven stack."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ratchet.core.settings import Settings
from ratchet_cli.common import (
    OPTS,
    JsonOpt,
    ctx_from_options,
    emit,
    ensure_server,
    flow_result,
    forward_or_run,
    home_settings,
    run_flow,
    run_here,
)

app = typer.Typer()


def inline_demo(as_json: bool) -> dict[str, Any]:
    ensure_server(forward_or_run())
    from flows.demo import demo_flow

    result = flow_result(demo_flow, as_json, "demo failed")
    return result


def event_demo(sandbox: Path, as_json: bool, keep_up: bool) -> dict[str, Any]:
    from datetime import UTC, datetime

    from ratchet.demo.report import write_loop_report
    from ratchet.demo.simulator import pending_runs, simulate
    from ratchet.demo.stream import demo_traffic, loop_report, make_demo_data
    from ratchet.runtime.home import init_home
    from ratchet_cli.stack import down as stack_down
    from ratchet_cli.stack import up as stack_up

    settings = Settings(home=sandbox).ensure()
    ctx = ctx_from_options()
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = settings.reports_dir / run
    data = make_demo_data(ctx.cfg.demo, run_dir / "incoming")
    init_home(ctx, data.clean[0], data.target, force=True)
    say = (lambda m: typer.echo(m, err=True)) if as_json else typer.echo
    say(f"starting the stack in {sandbox} (Prefect server, deployment runner, inference service)")
    stack = stack_up(settings, OPTS.config)
    say(f"Prefect API {stack['prefect_api_url']}, service {stack['service_url']}")
    os.environ["PREFECT_API_URL"] = stack["prefect_api_url"]  # before Prefect is imported
    # here, not in the warm process the stack just started: forwarded, the demo would start over
    # in it (the sandbox reset and the stack started a second time)
    ensure_server(run_here())
    from flows.ingest import ingest_flow

    def ingest(path: str) -> dict[str, Any]:
        ok, result = run_flow(ingest_flow, True, path=path)
        return result if ok else {"status": "rejected", "error": str(result)}

    def is_quiet() -> bool:
        return pending_runs(stack["prefect_api_url"], {"on-data", "on-challenger"}) == 0

    try:
        timeline = simulate(
            ctx.cfg.demo, data.clean + data.drifted, lambda i, k: demo_traffic(ctx.cfg.demo, i, k),
            data.target, data.drift_at,
            stack["service_url"], ingest, is_quiet, log=say,
        )
    finally:
        if not keep_up:
            stack_down(settings)
    say("scoring the champions and a model trained on post-drift data alone")
    report = loop_report(ctx, data, timeline, run)
    return {**report, **write_loop_report(run_dir, report)}


@app.command()
def demo(
    as_json: JsonOpt = False,
    home: Annotated[Path | None, typer.Option(help="sandbox home for the demo (default <home>/demo, cleared first)")] = None,
    inline: Annotated[bool, typer.Option(help="run the loop as one flow in this process instead of the event-driven stack")] = False,
    keep_up: Annotated[bool, typer.Option(help="leave the demo's stack running afterwards")] = False,
) -> None:
    """The main job: the whole loop on synthetic data with drift; writes a report.

    By default the demo starts the stack ("ratchet up") in its sandbox and only
    commits data and sends traffic: Prefect automations do the rest."""
    from ratchet.demo.stream import reset_sandbox
    from ratchet_cli.stack import down as stack_down

    sandbox = (home or home_settings().root / "demo").resolve()
    stack_down(Settings(home=sandbox))
    reset_sandbox(sandbox)
    OPTS.home = str(sandbox)
    result = inline_demo(as_json) if inline else event_demo(sandbox, as_json, keep_up)
    def acc(key: str) -> str:
        return "n/a" if result.get(key) is None else f"{result[key]:.3f}"

    emit(
        result, as_json,
        f"champions {', '.join(result['champion_versions']) or 'none'}; after drift: old champion "
        f"{acc('accuracy_old_champion_after_drift')}, new champion {acc('accuracy_new_champion_after_drift')}"
        f"\nreport: {result['report_md']}",
    )
