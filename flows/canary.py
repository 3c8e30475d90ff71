"""Progressive delivery of the challenger on a running inference service.

Ramp its traffic share step by step (``canary.steps``); after each step's analysis window
record it in the ledger; roll back at the first guardrail breach; end ``inconclusive`` (share
back to 0, champion kept, challenger keeps its alias) at a step without enough evidence;
promote after the last.
"""

from __future__ import annotations

from prefect import flow

from ratchet.delivery.results import CanaryResult
from ratchet.promotion.decision import GateEvidence
from ratchet.runtime.options import RunOptions
from tasks.canary import (
    analyze_step,
    close_service,
    connect_service,
    promote_canary,
    publish_canary_report,
    record_step,
    set_traffic_share,
    start_canary,
    stop_canary,
)
from tasks.notify import announce_canary_outcome
from tasks.promotion import publish_ledger


@flow(name="canary", log_prints=True)
def canary_flow(
    challenger: str | None = None,
    service_url: str | None = None,
    trigger: str = "manual",
    options: RunOptions = RunOptions(),
    gate: GateEvidence | None = None,
) -> CanaryResult:
    """Ramp the challenger on the running service; returns how it ended, with the steps' rows
    and the ramp's plot.

    Args:
        challenger: the version to ramp (default: the 'challenger' alias)
        service_url: the inference service (default: the running stack's)
        trigger: why this canary runs (kept in the ledger)
        options: config files, overrides and home
        gate: the offline gate's evidence when the release ran it, kept with the promotion
    """
    ctx = options.context()
    admin = connect_service(ctx, service_url)
    monitor = start_canary(ctx, admin, challenger, trigger, gate)

    steps = []
    outcome = None
    for share in ctx.cfg.canary.steps:
        set_traffic_share(admin, share)
        result = analyze_step(ctx, admin, monitor, share)
        record_step(ctx, monitor, result, trigger)
        steps.append(result)
        if result.decision != "pass":
            outcome = stop_canary(ctx, admin, monitor, result, trigger)
            break
    if outcome is None:
        outcome = promote_canary(ctx, admin, monitor, steps, trigger, gate)

    announce_canary_outcome(ctx, outcome)
    report = publish_canary_report(ctx, monitor, steps, outcome)
    publish_ledger(ctx)
    close_service(admin)
    print(f"canary v{monitor.challenger}: {outcome.action}; champion is v{outcome.champion}")
    return outcome.with_report(report.rows, report.plot)
