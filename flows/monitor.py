"""Production monitoring: the champion's live traffic against its training data."""

from __future__ import annotations

from prefect import flow

from ratchet.core.events import DRIFT_DETECTED
from ratchet.monitoring.drift_result import DriftResult
from ratchet.runtime.options import RunOptions
from tasks.events import announce_model_event
from tasks.monitoring import measure_production_drift


@flow(name="monitor", log_prints=True)
def monitor_flow(lookback_s: float | None = None, options: RunOptions = RunOptions()) -> DriftResult:
    """Compare the champion's live traffic (and feedback) with its training data; announce drift.

    Args:
        lookback_s: only live profiles of the last this many seconds (default: every window kept)
        options: config files, overrides and home (left at the default by deployments)
    """
    ctx = options.context()
    result = measure_production_drift(ctx, lookback_s=lookback_s)
    if result.detected:
        announce_model_event(DRIFT_DETECTED, ctx.cfg.model_name, result.announcement())
    print(f"drift detected: {result.detected} ({result.reason or result.drifted_features})")
    return result
