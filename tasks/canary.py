"""Canary stage: ramp the challenger's traffic on a running service; promote or roll back.

The admin token comes from ``RATCHET_ADMIN_TOKEN``, else from the Prefect Secret block
named by ``canary.admin_token_block``; it is resolved here, never passed between tasks
as a value of its own.
"""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from ratchet.delivery import markers, rollout, service
from ratchet.delivery.admin import AdminClient
from ratchet.delivery.guardrails import CanaryMonitor
from ratchet.delivery.report import CanaryReport, build_report
from ratchet.delivery.results import CanaryResult, StepResult
from ratchet.promotion.decision import GateEvidence
from ratchet.runtime.context import Context
from ratchet.runtime.stack import read_stack
from ratchet_prefect.options import SERVICE_CALL, STORE_BUSY, task
from ratchet_prefect.secrets import admin_token


@task
def find_service(ctx: Context, service_url: str | None = None) -> str | None:
    """The URL of a ready inference service for the release's canary, or None to promote
    directly (``canary.on_release``: auto, always or never)."""
    return service.service_for_release(ctx.cfg, service_url, lambda: read_stack(ctx.settings), say=print)


@task(**SERVICE_CALL)
def connect_service(ctx: Context, service_url: str | None = None) -> AdminClient:
    url = service.resolve_service_url(ctx.cfg, service_url, lambda: read_stack(ctx.settings))
    return service.connect(url, admin_token(ctx), ctx.cfg.canary.request_timeout_s)


@task
def start_canary(ctx: Context, admin: AdminClient, challenger: str | None = None, trigger: str = "manual",
                 gate: GateEvidence | None = None) -> CanaryMonitor:
    """The service loads the registry's aliases and must then serve exactly them, share 0.
    A marker in the service's state folder says a canary runs until it ends. The data commit is
    the gate's when a release ran one, else the challenger's lineage's: read once."""
    challenger = rollout.pin_challenger(ctx.registry, challenger)
    monitor = rollout.begin(admin, ctx.cfg.canary, ctx.registry.alias("champion"), challenger,
                            rollout.data_commit_of(ctx.registry, challenger, gate))
    markers.mark_running(ctx.settings.serving_dir, monitor, trigger)
    return monitor


@task(**SERVICE_CALL)
def set_traffic_share(admin: AdminClient, share: float) -> dict:
    return admin.set_traffic(share)


@task
def analyze_step(ctx: Context, admin: AdminClient, monitor: CanaryMonitor, share: float) -> StepResult:
    """One analysis window at ``share``: guardrails checked at every poll of /stats."""
    result = rollout.watch_step(admin, monitor, share)
    print(f"share {share:.0%}: {result.decision} after {result.seconds:.1f} s {'; '.join(result.breaches)}")
    return result


@task(**STORE_BUSY)
def record_step(ctx: Context, monitor: CanaryMonitor, result: StepResult, trigger: str) -> int:
    return int(rollout.record_step(ctx.ledger, ctx.cfg.model_name, monitor, result, trigger, monitor.data_commit).id)


@task
def stop_canary(
    ctx: Context, admin: AdminClient, monitor: CanaryMonitor, result: StepResult, trigger: str
) -> CanaryResult:
    """A step did not pass: share back to 0, the champion stays; ``rollback`` on a breach,
    ``inconclusive`` without enough evidence (the challenger keeps its alias), ``superseded``."""
    outcome = rollout.stop(admin, ctx.registry, ctx.ledger, monitor, result, trigger, ctx.cfg.canary,
                           monitor.data_commit)
    markers.clear_running(ctx.settings.serving_dir)
    return outcome


@task
def promote_canary(
    ctx: Context, admin: AdminClient, monitor: CanaryMonitor, steps: list[StepResult], trigger: str,
    gate: GateEvidence | None = None,
) -> CanaryResult:
    outcome = rollout.finish(admin, ctx.registry, ctx.ledger, monitor, steps, trigger, monitor.data_commit, gate)
    markers.clear_running(ctx.settings.serving_dir)
    return outcome


@task
def publish_canary_report(
    ctx: Context, monitor: CanaryMonitor, steps: list[StepResult], outcome: CanaryResult
) -> CanaryReport:
    """A table artifact (one row per step), a markdown summary and a PNG of the ramp."""
    report = build_report(monitor, steps, outcome, ctx.settings.reports_dir)
    create_table_artifact(report.rows, key="canary-ramp", description=report.title)
    create_markdown_artifact(report.markdown, key="canary-report", description=report.title)
    return report


@task
def close_service(admin: AdminClient) -> None:
    admin.close()
