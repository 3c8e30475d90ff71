"""The ``ratchet`` command.

Commands that change something run the matching Prefect flow (so every run
shows up in Prefect's history); read-only commands (``status``, ``history``,
``lineage``) and the emergency ``rollback`` go through the core library and
answer without starting an orchestrator. Prefect is imported only inside the
commands, after its environment points at the home folder.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ratchet.core.settings import Settings
from ratchet_cli.common import (
    EXIT_REJECTED,
    OPTS,
    JsonOpt,
    ctx_from_options,
    emit,
    fail,
    home_settings,
    prefect_home,
    run_flow,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.split("\n")[0])


@app.callback()
def main(
    config: Annotated[
        list[Path] | None,
        typer.Option("--config", "-c", help="config YAML; repeat to merge overrides (default configs/ratchet.yaml)"),
    ] = None,
    home: Annotated[
        Path | None, typer.Option("--home", help="home folder of the embedded stores (env RATCHET_HOME)")
    ] = None,
) -> None:
    """ratchet: continuous model improvement as Prefect flows."""
    OPTS.config = [str(p) for p in config] if config else None
    if config:  # subcommands that load config themselves (`ratchet data`) see it too
        os.environ["RATCHET_CONFIG"] = os.pathsep.join(str(p.resolve()) for p in config)
    OPTS.home = str(home) if home else None
    if home:
        os.environ["RATCHET_HOME"] = str(home)
    _use_running_stack()


def _use_running_stack() -> None:
    """When ``ratchet up`` runs, commands talk to its Prefect server instead of
    starting a temporary one."""
    from ratchet.runtime.stack import prefect_api_url

    url = prefect_api_url(home_settings())
    if url and not os.environ.get("PREFECT_API_URL"):
        os.environ["PREFECT_API_URL"] = url


# ------------------------------------------------------------------ commands
@app.command()
def init(
    schema_from: Annotated[Path | None, typer.Option(help="sample CSV/Parquet to infer the schema from")] = None,
    target: Annotated[str | None, typer.Option(help="label column of the sample")] = None,
    force: Annotated[bool, typer.Option(help="infer the schema again over an existing one")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create the home folder and an empty data repository; optionally infer a schema."""
    ctx = ctx_from_options()
    from ratchet.runtime.home import init_home

    try:
        out = init_home(ctx, str(schema_from) if schema_from else None, target, force)
    except (ValueError, FileExistsError, FileNotFoundError, KeyError) as e:
        fail(str(e), as_json)
    human = f"home {out['home']}, data repository '{out['repository']}' at {out['main'][:12]}"
    if out.get("schema"):
        human += f"\nschema: {out['schema']} ({len(out['columns'])} features); review it before ingesting"
    emit(out, as_json, human)


@app.command()
def ingest(path: Path, as_json: JsonOpt = False) -> None:
    """Write-audit-publish one batch (CSV or Parquet). Exit code 2 when rejected."""
    prefect_home()
    from flows.ingest import ingest_flow
    from ratchet.data.ingest import IngestRejected

    ok, result = run_flow(ingest_flow, as_json, path=str(path))
    if ok:
        emit(result, as_json, f"published {result['rows']} rows; main at {result['commit'][:12]}")
        return
    if isinstance(result, IngestRejected):
        report = result.report
        if as_json:
            sys.stdout.write(json.dumps(report, default=str) + "\n")
        typer.secho(str(result), err=True, fg=typer.colors.RED)
        raise typer.Exit(EXIT_REJECTED)
    fail(f"ingest failed: {result}", as_json)


@app.command()
def train(
    trials: Annotated[int | None, typer.Option(help="Optuna trials (default from config)")] = None,
    ref: Annotated[str | None, typer.Option(help="data ref: branch, tag or commit (default main)")] = None,
    window: Annotated[int | None, typer.Option(help="train on the last N batches")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train and tune on a data commit; register the best model as 'challenger'."""
    prefect_home()
    from flows.train import train_flow

    ok, result = run_flow(train_flow, as_json, ref=ref, trials=trials, window_batches=window)
    if not ok:
        fail(f"training failed: {result}", as_json)
    m = result["metrics"]
    emit(
        result, as_json,
        f"registered version {result['model_version']} as challenger "
        f"(data {result['data_commit'][:12]}, test accuracy {m['test_accuracy']:.4f})",
    )


@app.command()
def evaluate(as_json: JsonOpt = False) -> None:
    """Champion against challenger on the same held-out rows; print the gate's decision."""
    prefect_home()
    from flows.promote import evaluate_flow

    ok, result = run_flow(evaluate_flow, as_json)
    if not ok:
        fail(f"evaluation failed: {result}", as_json)
    emit(result, as_json, f"{result['decision']}: " + "; ".join(result["reasons"]))


@app.command()
def promote(as_json: JsonOpt = False) -> None:
    """Evaluate, then move 'champion' to the challenger if the gate says promote."""
    prefect_home()
    from flows.promote import promote_flow

    ok, result = run_flow(promote_flow, as_json)
    if not ok:
        fail(f"promotion failed: {result}", as_json)
    emit(result, as_json, f"{result['action']}: champion is version {result['champion']}")


@app.command()
def canary(
    challenger: Annotated[str | None, typer.Option(help="version to ramp (default: the 'challenger' alias)")] = None,
    service_url: Annotated[str | None, typer.Option(help="inference service (default: the running stack's)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ramp the challenger's traffic on the running service; promote, or roll back on a breach."""
    prefect_home()
    from flows.canary import canary_flow

    ok, result = run_flow(canary_flow, as_json, challenger=challenger, service_url=service_url, trigger="cli")
    if not ok:
        fail(f"canary failed: {result}", as_json)
    steps = ", ".join(f"{s['share']:.0%} {s['decision']}" for s in result["steps"])
    emit(result, as_json, f"{result['action']} ({steps}): champion is version {result['champion']}")


@app.command()
def rollback(
    to: Annotated[str | None, typer.Option(help="version to restore (default: 'previous')")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore the previous champion now, without waiting for the orchestrator."""
    from ratchet.promotion.promote import PromotionError
    from ratchet.promotion.promote import rollback as do_rollback

    t0 = time.perf_counter()
    ctx = ctx_from_options()
    try:
        out = do_rollback(ctx.registry, ctx.ledger, to, trigger="cli").to_dict()
    except (PromotionError, LookupError) as e:
        fail(str(e), as_json)
    except Exception as e:  # MLflow raises its own error for an unknown version
        fail(f"rollback failed: {e}", as_json)
    out["seconds"] = round(time.perf_counter() - t0, 3)
    out["event_sent"] = _notify_orchestrator("ratchet.model.rolled_back", ctx.cfg.model_name, out)
    emit(out, as_json, f"rolled back: champion is version {out['champion']} (was {out['previous']})")


def _notify_orchestrator(event: str, model: str, payload: dict[str, Any]) -> bool:
    """Send a Prefect event when a Prefect server is configured; never block or fail on it."""
    if not os.environ.get("PREFECT_API_URL"):
        return False
    try:
        from tasks.events import emit_model_event

        emit_model_event(event, model, payload)
        return True
    except Exception as e:  # the rollback itself already happened
        typer.secho(f"warning: could not send {event} to Prefect: {e}", err=True, fg=typer.colors.YELLOW)
        return False


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="port (default from config)")] = None,
    host: Annotated[str | None, typer.Option(help="host (default from config)")] = None,
) -> None:
    """HTTP service: POST /predict, GET /health, GET /metrics."""
    import uvicorn

    from ratchet.serving.__main__ import build_app, tune_process

    ctx, application = build_app()
    tune_process(application)  # models loaded, GC frozen, short GIL switch: see ratchet.serving
    uvicorn.run(
        application, host=host or ctx.cfg.serving.host, port=port or ctx.cfg.serving.port, access_log=False,
    )


@app.command()
def relay(
    port: Annotated[int, typer.Option(help="port for lakeFS webhooks")] = 8780,
    host: Annotated[str, typer.Option(help="host")] = "127.0.0.1",
) -> None:
    """Receive lakeFS post-merge webhooks and send them on as Prefect events."""
    import uvicorn

    from ratchet.data.relay import create_relay_app

    api = os.environ.get("PREFECT_API_URL")
    if not api:
        fail("no Prefect server: set PREFECT_API_URL (or run `ratchet up`)", False)
    ctx = ctx_from_options()
    uvicorn.run(
        create_relay_app(api, ctx.cfg.data.main_branch, os.environ.get("RATCHET_RELAY_TOKEN")),
        host=host, port=port,
    )


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Champion, challenger, traffic split, main's data commit and the last drift check."""
    from ratchet.serving.routing import read_traffic

    ctx = ctx_from_options()
    aliases = ctx.registry.aliases()
    drift_file = ctx.settings.root / "drift.json"
    drift = json.loads(drift_file.read_text()) if drift_file.exists() else None
    out = {
        "home": str(ctx.settings.root),
        "model": ctx.cfg.model_name,
        "champion": aliases["champion"],
        "challenger": aliases["challenger"],
        "previous": aliases["previous"],
        "traffic": read_traffic(ctx.settings.serving_dir / "traffic.json").to_dict(),
        "data": ctx.repo.resolve(ctx.cfg.data.main_branch),
        "drift": None if drift is None else {
            k: drift.get(k) for k in ("checked_at", "champion", "detected", "drifted_share", "drifted_features")
        },
    }
    human = (
        f"champion {out['champion']}  challenger {out['challenger']}  previous {out['previous']}\n"
        f"traffic {out['traffic']}\ndata main {out['data'][:12]}\n"
        f"drift {'none checked yet' if drift is None else out['drift']}"
    )
    emit(out, as_json, human)


@app.command()
def history(limit: Annotated[int | None, typer.Option(help="last N entries")] = None, as_json: JsonOpt = False) -> None:
    """The promotion ledger: every alias move and traffic change."""
    from dataclasses import asdict

    ctx = ctx_from_options()
    entries = [asdict(e) for e in ctx.ledger.history(limit)]
    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(e['ts']))}  {e['action']:<8} "
        f"{e['from_version'] or '-':>4} -> {e['to_version'] or '-':<4} {e['trigger']}"
        for e in entries
    ]
    emit({"entries": entries}, as_json, "\n".join(lines) or "the ledger is empty")


@app.command()
def lineage(version: str, as_json: JsonOpt = False) -> None:
    """Data commit, code version, config, MLflow run and Optuna trial of a model version."""
    from ratchet.training.lineage import lineage as version_lineage

    ctx = ctx_from_options()
    try:
        out = version_lineage(ctx.repo, ctx.registry, version)
    except LookupError as e:
        fail(str(e), as_json)
    emit(
        out, as_json,
        "\n".join(f"{k}: {v}" for k, v in out.items() if k not in ("params", "metrics", "data_profile")),
    )


@app.command()
def up(
    port: Annotated[int | None, typer.Option(help="inference service port (default: a free one)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start the local stack in the background: Prefect server, deployment runner
    with the automations, inference service. State lives in the home folder."""
    from ratchet_cli.stack import up as stack_up

    try:
        stack = stack_up(home_settings(), OPTS.config, serve_port=port)
    except RuntimeError as e:
        fail(str(e), as_json)
    emit(
        stack, as_json,
        f"Prefect API {stack['prefect_api_url']}\ninference service {stack['service_url']}\n"
        f"logs in {home_settings().root / 'logs'}; stop with `ratchet down`",
    )


@app.command()
def down(as_json: JsonOpt = False) -> None:
    """Stop everything `ratchet up` started; champion, traffic, ledger and history stay."""
    from ratchet_cli.stack import down as stack_down

    out = stack_down(home_settings(), OPTS.config)
    emit(out, as_json, f"stopped: {', '.join(out['stopped']) or 'nothing was running'}")


@app.command()
def demo(
    as_json: JsonOpt = False,
    home: Annotated[Path | None, typer.Option(help="sandbox home for the demo (default <home>/demo, cleared first)")] = None,
    inline: Annotated[bool, typer.Option(help="run the loop as one flow in this process instead of the event-driven stack")] = False,
    keep_up: Annotated[bool, typer.Option(help="leave the demo's stack running afterwards")] = False,
) -> None:
    """The main job: the whole loop on synthetic data with drift; writes a report.

    By default the demo starts the stack (`ratchet up`) in its sandbox and only
    commits data and sends traffic: Prefect automations do the rest."""
    from ratchet.demo.stream import reset_sandbox
    from ratchet_cli.stack import down as stack_down

    sandbox = (home or home_settings().root / "demo").resolve()
    stack_down(Settings(home=sandbox))
    reset_sandbox(sandbox)
    OPTS.home = str(sandbox)
    from ratchet_cli.demo import event_demo, inline_demo

    result = inline_demo(as_json) if inline else event_demo(sandbox, as_json, keep_up)
    def acc(key: str) -> str:
        return "n/a" if result.get(key) is None else f"{result[key]:.3f}"

    emit(
        result, as_json,
        f"champions {', '.join(result['champion_versions']) or 'none'}; after drift: old champion "
        f"{acc('accuracy_old_champion_after_drift')}, new champion {acc('accuracy_new_champion_after_drift')}"
        f"\nreport: {result['report_md']}",
    )


def _mount_data_app() -> None:
    try:
        from ratchet_cli.data import app as data_app
    except ImportError:  # pragma: no cover - the data CLI ships with the package
        return
    app.add_typer(data_app, name="data", help="Branches, commits, diffs and merges of the data repository.")


_mount_data_app()
