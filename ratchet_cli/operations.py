"""The stack and what it holds: ``up``, ``down``, ``status``, ``history``, ``lineage``, ``gc``."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Annotated

import typer

from ratchet.core.settings import Settings
from ratchet_cli.common import (
    OPTS,
    JsonOpt,
    ctx_from_options,
    emit,
    fail,
    home_settings,
    use_running_prefect,
)
from ratchet_cli.release import pending_approval

if TYPE_CHECKING:
    from ratchet.monitoring.drift_result import DriftResult

app = typer.Typer()


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
        "pending_approval": pending_approval(ctx.settings.root),
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
