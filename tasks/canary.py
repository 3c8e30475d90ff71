"""Canary stage: ramp the challenger's traffic on a running service; promote or roll back.

The admin token comes from ``RATCHET_ADMIN_TOKEN``, else from the Prefect Secret block
named by ``canary.admin_token_block``; it is resolved here, never passed between tasks
as a value of its own.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from ratchet.delivery import canary
from ratchet.delivery.canary import AdminClient, CanaryMonitor, StepResult
from ratchet.runtime.context import Context


def resolve_admin_token(ctx: Context) -> str | None:
    """``RATCHET_ADMIN_TOKEN``, else the Prefect Secret block, else the token ``ratchet up``
    generated for its service, else None (an open service)."""
    token = os.environ.get("RATCHET_ADMIN_TOKEN")
    if token:
        return token
    from prefect.blocks.system import Secret

    try:
        return str(Secret.load(ctx.cfg.canary.admin_token_block).get())
    except ValueError:  # no such block
        pass
    from ratchet.runtime.stack import read_admin_token

    return read_admin_token(ctx.settings)


def resolve_service_url(ctx: Context, url: str | None) -> str:
    """The argument, else ``RATCHET_SERVICE_URL`` (set for workers on a cluster), else
    ``canary.service_url``, else the running stack's, else serving host:port."""
    if url:
        return url
    if os.environ.get("RATCHET_SERVICE_URL"):
        return os.environ["RATCHET_SERVICE_URL"]
    if ctx.cfg.canary.service_url:
        return ctx.cfg.canary.service_url
    try:
        from ratchet.runtime.stack import read_stack

        stack = read_stack(ctx.settings)
        if stack and stack.get("service_url"):
            return str(stack["service_url"])
    except ImportError:
        pass
    return f"http://{ctx.cfg.serving.host}:{ctx.cfg.serving.port}"


def _data_commit(ctx: Context, version: str) -> str | None:
    try:
        return ctx.registry.version_info(version)["tags"].get("data_commit")
    except Exception:
        return None


@task(cache_policy=NO_CACHE)
def find_service(ctx: Context, service_url: str | None = None) -> str | None:
    """The URL of a ready inference service for the release's canary, or None to promote
    directly (``canary.on_release``: auto, always or never)."""
    mode = ctx.cfg.canary.on_release
    if mode == "never":
        return None
    url = resolve_service_url(ctx, service_url)
    admin = AdminClient(url, None, min(5.0, ctx.cfg.canary.request_timeout_s))
    try:
        health = admin.health()
    except canary.CanaryError as e:
        health = {"error": str(e)}
    finally:
        admin.close()
    if health.get("ready"):
        return url
    why = health.get("error") or "it has no champion loaded"
    if mode == "always":
        raise canary.CanaryError(f"canary.on_release is 'always' but no service is ready at {url}: {why}")
    print(f"no inference service ready at {url} ({why}): promoting without a canary")
    return None


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def connect_service(ctx: Context, service_url: str | None = None) -> AdminClient:
    admin = AdminClient(
        resolve_service_url(ctx, service_url), resolve_admin_token(ctx), ctx.cfg.canary.request_timeout_s
    )
    health = admin.health()
    if not health.get("ready"):
        raise canary.CanaryError(f"the service at {admin.url} has no champion loaded yet")
    return admin


@task(cache_policy=NO_CACHE)
def start_canary(ctx: Context, admin: AdminClient, challenger: str | None = None, trigger: str = "manual") -> CanaryMonitor:
    """The service loads the registry's aliases and must then serve exactly them, share 0.
    A marker in the service's state folder says a canary runs until it ends."""
    reg = ctx.registry
    challenger = challenger or reg.alias("challenger")
    if challenger is not None and reg.alias("challenger") != str(challenger):
        reg.set_alias("challenger", str(challenger))
    monitor = canary.begin(admin, ctx.cfg.canary, reg.alias("champion"), challenger)
    canary.mark_running(ctx.settings.serving_dir, monitor, trigger)
    return monitor


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=1)
def set_traffic_share(admin: AdminClient, share: float) -> dict:
    return admin.set_traffic(share)


@task(cache_policy=NO_CACHE)
def analyze_step(ctx: Context, admin: AdminClient, monitor: CanaryMonitor, share: float) -> StepResult:
    """One analysis window at ``share``: guardrails checked at every poll of /stats."""
    result = canary.watch_step(admin, monitor, share)
    print(f"share {share:.0%}: {result.decision} after {result.seconds:.1f} s {'; '.join(result.breaches)}")
    return result


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def record_step(ctx: Context, monitor: CanaryMonitor, result: StepResult, trigger: str) -> int:
    entry = canary.record_step(
        ctx.ledger, ctx.cfg.model_name, monitor, result, trigger, _data_commit(ctx, monitor.challenger)
    )
    return int(entry.id)


@task(cache_policy=NO_CACHE)
def roll_back_canary(
    ctx: Context, admin: AdminClient, monitor: CanaryMonitor, result: StepResult, trigger: str
) -> dict:
    outcome = canary.roll_back(
        admin, ctx.registry, ctx.ledger, monitor, result.breaches, result.evidence, trigger,
        keep_challenger=ctx.cfg.canary.keep_challenger_on_rollback,
        data_commit=_data_commit(ctx, monitor.challenger),
        action="superseded" if result.decision == "superseded" else "rollback",
    )
    canary.clear_running(ctx.settings.serving_dir)
    return outcome


@task(cache_policy=NO_CACHE)
def promote_canary(
    ctx: Context, admin: AdminClient, monitor: CanaryMonitor, steps: list[StepResult], trigger: str,
    gate: dict | None = None,
) -> dict:
    outcome = canary.finish(
        admin, ctx.registry, ctx.ledger, monitor, steps, trigger, _data_commit(ctx, monitor.challenger), gate
    )
    canary.clear_running(ctx.settings.serving_dir)
    return outcome


@task(cache_policy=NO_CACHE)
def publish_canary_report(ctx: Context, monitor: CanaryMonitor, steps: list[StepResult], outcome: dict) -> dict:
    """A table artifact (one row per step), a markdown summary and a PNG of the ramp."""
    rows = canary.step_rows(steps)
    title = f"canary v{monitor.challenger} vs v{monitor.champion}: {outcome['action']}"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    png = canary.plot_ramp(
        steps, Path(ctx.settings.reports_dir) / "canary" / f"{stamp}-v{monitor.challenger}.png", title
    )
    table = create_table_artifact(rows, key="canary-ramp", description=title)
    lines = [
        f"# {title}",
        "",
        f"reason: {'; '.join(outcome.get('reason') or []) or 'every step passed'}",
        "",
        "| share | decision | challenger req | errors (chall/champ) | p99 ms (chall/champ) | JS | accuracy (chall/champ) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['share']:.0%} | {r['decision']} | {r['challenger_requests']} | "
            f"{r['challenger_error_rate']} / {r['champion_error_rate']} | "
            f"{r['challenger_p99_ms']} / {r['champion_p99_ms']} | {r['prediction_js']} | "
            f"{r['challenger_accuracy']} / {r['champion_accuracy']} |"
        )
    lines += ["", f"plot: `{png}`"]
    create_markdown_artifact("\n".join(lines), key="canary-report", description=title)
    return {"table_artifact": str(table), "plot": str(png), "rows": rows}


@task(cache_policy=NO_CACHE)
def close_service(admin: AdminClient) -> None:
    admin.close()
