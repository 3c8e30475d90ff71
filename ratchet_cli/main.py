"""The ``ratchet`` command.

Commands that change something run the matching Prefect flow (so every run
shows up in Prefect's history); read-only commands (``status``, ``history``,
``lineage``) and the emergency ``rollback`` go through the core library and
answer without starting an orchestrator. Prefect is imported only inside the
commands, after its environment points at the home folder and at the home's one Prefect
server (started by the first command that needs it, reused after; ``ratchet_cli.server``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from ratchet.core.events import MODEL_PROMOTED, MODEL_ROLLED_BACK
from ratchet.core.settings import Settings
from ratchet_cli.backup import register as _register_backup
from ratchet_cli.common import (
    EXIT_REJECTED,
    OPTS,
    JsonOpt,
    ctx_from_options,
    debug_enabled,
    emit,
    fail,
    home_settings,
    is_disk_error,
    prefect_home,
    report_user_error,
    run_flow,
    use_running_prefect,
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

if TYPE_CHECKING:
    from ratchet.monitoring.drift_result import DriftResult


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
    # themselves (common.prefect_home), the read-only ones never touch it


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
    prefect_home()
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

    ok, result = run_flow(train_flow, as_json, needs_schema=True, ref=ref, trials=trials, window_batches=window)
    if not ok:
        fail(f"training failed: {result}", as_json)
    from ratchet.training.summary import headline

    if result.get("skipped"):
        emit(result, as_json, f"version {result['model_version']} already learnt data {result['data_commit'][:12]}")
        return
    emit(
        result, as_json,
        f"registered version {result['model_version']} as challenger "
        f"(data {result['data_commit'][:12]}, {headline(result['metrics'])})",
    )


@app.command()
def evaluate(as_json: JsonOpt = False) -> None:
    """Champion against challenger on the same held-out rows; print the gate's decision."""
    prefect_home()
    from flows.promote import evaluate_flow

    ok, result = run_flow(evaluate_flow, as_json, needs_schema=True)
    if not ok:
        fail(f"evaluation failed: {result}", as_json)
    emit(result, as_json, f"{result['decision']}: " + "; ".join(result["reasons"]))


@app.command()
def promote(as_json: JsonOpt = False) -> None:
    """Evaluate, then move 'champion' to the challenger if the gate says promote."""
    prefect_home()
    from flows.promote import promote_flow

    ok, result = run_flow(promote_flow, as_json, needs_schema=True)
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
    if result["action"] == "promote":  # no release around it announces the promotion: say it here
        from ratchet.delivery.notify import message

        model = ctx_from_options().cfg.model_name
        result["event_sent"] = _notify_orchestrator(MODEL_PROMOTED, model, message(
            model, "promote", result["champion"], result["challenger"], f"canary passed ({steps})", None))
        emit(result, as_json, f"promoted version {result['champion']} to champion (was {result.get('previous')}; "
             f"canary {steps})")
        return
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
    out["event_sent"] = _notify_orchestrator(MODEL_ROLLED_BACK, ctx.cfg.model_name, out)
    emit(out, as_json, f"rolled back: champion is version {out['champion']} (was {out['previous']})")


def _notify_orchestrator(event: str, model: str, payload: dict[str, Any]) -> bool:
    """Send a Prefect event when a Prefect server is configured; never block or fail on it."""
    if not use_running_prefect():
        return False
    try:
        from ratchet_prefect.events import emit_model_event

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
    """HTTP service: POST /predict, GET /health, GET /metrics. Its /admin routes take the
    home's admin token (run/admin-token, made on first use) unless RATCHET_ADMIN_TOKEN is set."""
    import uvicorn

    from ratchet.runtime.stack import admin_token, token_file
    from ratchet.serving.__main__ import build_app, tune_process

    settings = home_settings().ensure()
    if not os.environ.get("RATCHET_ADMIN_TOKEN"):  # as `ratchet up`: the admin routes are never open
        os.environ["RATCHET_ADMIN_TOKEN"] = admin_token(settings)
        typer.echo(f"admin token: {token_file(settings)} (send Authorization: Bearer <it> to /admin routes)", err=True)
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

    api = os.environ.get("PREFECT_API_URL") if use_running_prefect() else None
    if not api:
        fail("no Prefect server: set PREFECT_API_URL (or run `ratchet up`)", False)
    ctx = ctx_from_options()
    uvicorn.run(
        create_relay_app(api, ctx.cfg.data.main_branch, os.environ.get("RATCHET_RELAY_TOKEN")),
        host=host, port=port,
    )


@app.command()
def status(
    as_json: JsonOpt = False,
    all_homes: Annotated[bool, typer.Option("--all", help="only the background processes of every home of this user")] = False,
) -> None:
    """Champion, challenger, traffic split, main's data commit, the last drift check, and the
    home's background processes (memory, idle time)."""
    from ratchet.monitoring.drift_result import DriftResult
    from ratchet.runtime.stack import dashboard_url
    from ratchet.serving.traffic_split import read_traffic
    from ratchet_cli import idle

    if all_homes:
        _status_all(as_json)
        return
    ctx = ctx_from_options()
    aliases = ctx.registry.aliases()
    drift = DriftResult.read(ctx.settings.root / "drift.json")
    out = {
        "home": str(ctx.settings.root),
        "model": ctx.cfg.model_name,
        "champion": aliases["champion"],
        "challenger": aliases["challenger"],
        "previous": aliases["previous"],
        "traffic": read_traffic(ctx.settings.serving_dir / "traffic.json").to_dict(),
        "data": ctx.repo.resolve(ctx.cfg.data.main_branch),
        "drift": None if drift is None else drift.summary(),
        "pending_approval": _pending_approval(ctx.settings.root),
        "runner": _runner_status(ctx.settings),
        "background": idle.processes(ctx.settings.root),
        "other_homes": idle.others(ctx.settings.root),
        "dashboard": dashboard_url(ctx.settings),
    }
    human = (
        f"champion {out['champion']}  challenger {out['challenger']}  previous {out['previous']}\n"
        f"traffic {out['traffic']}\ndata main {out['data'][:12]}\n"
        f"drift {'none checked yet' if drift is None else out['drift']}"
        + ("" if drift is None else _accuracy_line(drift))
        + ("" if out["pending_approval"] is None else f"\npending approval: version {out['pending_approval']['version']}")
        + ("" if out["runner"] is None else f"\nrunner pid {out['runner']['pid']} "
           f"{'alive' if out['runner']['alive'] else 'not running'}, restarts {out['runner']['restarts']}")
        + "".join(f"\n{line}" for line in idle.describe(out["background"]) or ["background: none running"])
        + ("" if not out["other_homes"] else f"\nother homes: {len(out['other_homes'])} with background processes, "
           f"{sum(h['rss_mb'] for h in out['other_homes']):.0f} MB (`ratchet status --all`)")
        + ("" if out["dashboard"] is None else f"\nPrefect dashboard {out['dashboard']}")
    )
    emit(out, as_json, human)


def _status_all(as_json: bool) -> None:
    """Every registered home's background processes (``ratchet_cli.homes``)."""
    from ratchet_cli import homes, idle

    rss = idle.rss_by_group()
    found = [{"home": str(h), "background": procs} for h in homes.registered() if (procs := idle.processes(h, rss))]
    total = sum(p["rss_mb"] for f in found for p in f["background"])
    lines = [f"{f['home']}\n" + "\n".join(f"  {line}" for line in idle.describe(f["background"])) for f in found]
    emit({"homes": found, "rss_mb": round(total, 1)}, as_json,
         "\n".join(lines + [f"{len(found)} home(s), {total:.0f} MB"]) if found else "no background processes")


def _accuracy_line(drift: DriftResult) -> str:
    """The champion's accuracy from feedback labels beside the one estimated without labels (CBPE)."""
    est = drift.estimated or {}
    live = drift.live_accuracy
    return (f"\naccuracy of v{drift.champion}: live (labels) {'-' if live is None else format(live, '.3f')}, "
            f"estimated without labels {'-' if not est else format(est['accuracy'], '.3f')}"
            + ("" if not est else f" ± {est['accuracy_sd']:.3f} on {est['rows']} rows"))


def _runner_status(settings) -> dict | None:
    """The stack's deployment runner (``ratchet up``'s supervisor records it), or None."""
    from ratchet.runtime.stack import read_runner

    runner = read_runner(settings)
    return None if runner is None else {k: runner.get(k) for k in ("pid", "alive", "restarts", "started_at", "last_exit")}


@app.command()
def history(
    limit: Annotated[int | None, typer.Option(help="last N entries")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="check the ledger's hash chain; exit 1 naming the first bad entry")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The promotion ledger: every alias move and traffic change."""
    from dataclasses import asdict

    ctx = ctx_from_options()
    if verify:
        check = ctx.ledger.verify()
        if not check.ok:
            fail(f"ledger entry {check.bad_id}: {check.reason}", as_json, **check.to_dict())
        emit(check.to_dict(), as_json, f"ledger intact: {check.entries} entries")
        return
    entries = [asdict(e) for e in ctx.ledger.history(limit)]
    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(e['ts']))}  {e['action']:<12} "
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
        "\n".join(f"{k}: {_lineage_value(k, v)}" for k, v in out.items()
                  if k not in ("params", "metrics", "data_profile")),
    )


def _lineage_value(key: str, value):
    """A candidate window per line: its name, batches and proxy loss on the newest batch."""
    if key != "data_window_candidates" or not value:
        return value
    return "".join(f"\n  {c['name']} ({c['batches']} batch(es)): loss "
                   f"{'-' if c['loss'] is None else format(c['loss'], '.4f')}"
                   f"{'' if c['se'] is None else ' ± ' + format(c['se'], '.4f')}" for c in value)


@app.command()
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report what would be freed; remove nothing")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Retention: rejected ingest branches, unreachable data, old versions' artifacts and
    checkpoints, old live profiles, old Prefect flow runs, long logs (config: retention).
    Never what a branch, tag, alias or ledger entry reaches. Runs without Prefect (then its
    flow runs are skipped; the gc/scheduled deployment runs the same)."""
    from ratchet.runtime.gc import describe, run_gc

    api_url = os.environ.get("PREFECT_API_URL") if use_running_prefect() else None  # none: flow runs skipped
    out = run_gc(ctx_from_options(), dry_run=dry_run, api_url=api_url).to_dict()
    emit(out, as_json, describe(out))


@app.command()
def up(
    port: Annotated[int | None, typer.Option(help="inference service port (default: a free one)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start the local stack in the background: Prefect server, deployment runner
    with the automations, inference service. State lives in the home folder."""
    from ratchet_cli.stack import up as stack_up

    try:
        stack = stack_up(home_settings(), OPTS.config or _found_config_files(), serve_port=port)
    except RuntimeError as e:
        fail(str(e), as_json)
    emit(
        stack, as_json,
        f"Prefect dashboard {stack.get('dashboard_url') or '(off: RATCHET_PREFECT_UI=0)'}\n"
        f"Prefect API {stack['prefect_api_url']}\ninference service {stack['service_url']}\n"
        f"logs in {home_settings().root / 'logs'}; stop with `ratchet down`",
    )


def _found_config_files() -> list[str] | None:
    """The project's config files as found from here (./ratchet.yaml is relative to this
    folder): the stack's processes get them by name, whatever folder they run in."""
    from ratchet.core.config import default_config_files

    return [str(f.resolve()) for f in default_config_files(home_settings().root)] or None


@app.command()
def down(
    as_json: JsonOpt = False,
    all_homes: Annotated[bool, typer.Option("--all", help="stop the background processes of every home of this user")] = False,
) -> None:
    """Stop everything "ratchet up" started, and the home's Prefect server and warm process;
    champion, traffic, ledger and history stay."""
    from ratchet_cli.stack import down as stack_down

    if all_homes:
        from ratchet_cli.homes import registered

        stopped = {str(h): s for h in registered() if (s := stack_down(Settings(home=h))["stopped"])}
        emit({"homes": stopped}, as_json, "\n".join(f"{h}: stopped {', '.join(s)}" for h, s in stopped.items())
             or "nothing was running")
        return
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

    By default the demo starts the stack ("ratchet up") in its sandbox and only
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
    prefect_home()
    from flows.score import score_flow

    if (path is None) == (ref is None):
        fail("score a FILE or --ref COMMIT (one of them)", as_json)
    ok, result = run_flow(score_flow, as_json, path=str(path) if path else None, ref=ref, version=version,
                          out=str(out) if out else None, chunk_rows=chunk_rows)
    if not ok:
        fail(f"scoring failed: {result}", as_json)
    emit(result, as_json, f"scored {result['rows']} rows with version {result['model_version']} "
         f"(data {result['data_commit'][:19]}): {result['repo_path']} on {result['repo_branch']}"
         + (f", {result['out']}" if result["out"] else ""))


def _pending_approval(root: Path) -> dict[str, Any] | None:
    from ratchet.delivery.approval import read_pending

    p = read_pending(root)
    keys = ("version", "champion", "since", "flow_run_url", "flow_run_id", "reason")  # champion None: the first
    return None if p is None else {k: p.get(k) for k in keys}


def _answer_approval(approve: bool, version: str | None, comment: str, who: str | None, as_json: bool) -> None:
    """Resume the release run that waits for approval with the answer, through the Prefect API."""
    import getpass

    from ratchet.delivery.approval import ApprovalAnswer, check_answerable

    ctx = ctx_from_options()
    try:
        pending = check_answerable(ctx.settings.root, version)
    except LookupError as e:
        fail(str(e), as_json)
    prefect_home()
    from ratchet_prefect.approval import resume_paused_run

    answer = ApprovalAnswer(approve=approve, comment=comment, who=who or getpass.getuser())
    try:
        resume_paused_run(pending["flow_run_id"], answer)
    except Exception as e:  # the run no longer waits, or no Prefect server answers
        fail(f"could not resume the release of version {pending['version']}: {e}", as_json)
    verb = "approved" if approve else "rejected"
    emit({"approve": approve, "comment": comment, "who": answer.who, "decision": verb, "version": pending["version"],
          "flow_run_id": pending["flow_run_id"], "flow_run_url": pending.get("flow_run_url")}, as_json,
         f"{verb} version {pending['version']}: its release resumes ({pending.get('flow_run_url') or pending['flow_run_id']})")


@app.command()
def approve(
    version: Annotated[str | None, typer.Argument(help="the version waiting (default: the pending one)")] = None,
    comment: Annotated[str, typer.Option(help="why; kept in the ledger and on the version")] = "",
    who: Annotated[str | None, typer.Option(help="who approves (default: the user name)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve the challenger whose release waits for approval: its release goes on (canary or promotion)."""
    _answer_approval(True, version, comment, who, as_json)


@app.command()
def reject(
    version: Annotated[str | None, typer.Argument(help="the version waiting (default: the pending one)")] = None,
    comment: Annotated[str, typer.Option(help="why; kept in the ledger and on the version")] = "",
    who: Annotated[str | None, typer.Option(help="who rejects (default: the user name)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject the challenger whose release waits for approval: the champion is kept."""
    _answer_approval(False, version, comment, who, as_json)


def _mount_data_app() -> None:
    try:
        from ratchet_cli.data import app as data_app
    except ImportError:  # pragma: no cover - the data CLI ships with the package
        return
    app.add_typer(data_app, name="data", help="Branches, commits, diffs and merges of the data repository.")


_mount_data_app()
_register_backup(app)  # `ratchet backup`, `ratchet restore` (ratchet_cli/backup.py)


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
