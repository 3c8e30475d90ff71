"""A new challenger: the offline gate first, then the rollout.

The gate keeps it out, or the canary ramps it on the running inference service and promotes
it or rolls it back on live metrics. Without a service (``canary.on_release: auto`` and none
answers, or ``never``), and for the very first model (nothing to compare it with live), the
gate's promotion is the rollout: the promote flow's own path.
"""

from __future__ import annotations

from prefect import flow

from flows.canary import canary_flow
from flows.promote import promote_flow
from ratchet.promotion.promote import PromotionResult
from ratchet.runtime.options import RunOptions
from tasks.canary import find_service
from tasks.promotion import evaluate_challenger


@flow(name="release", log_prints=True)
def release_flow(
    trigger: str = "challenger registered",
    service_url: str | None = None,
    options: RunOptions = RunOptions(),
) -> PromotionResult:
    ctx = options.context()
    result = evaluate_challenger(ctx)
    print(f"gate: {result.decision} ({'; '.join(result.reasons)})")
    url = find_service(ctx, service_url) if result.promote and result.champion is not None else None
    if url is None:
        return promote_flow(trigger=trigger, options=options.at_home(str(ctx.settings.root)), evaluation=result)
    outcome = canary_flow(
        challenger=result.challenger, service_url=url, trigger=trigger,
        options=options.at_home(str(ctx.settings.root)), gate=result.evidence,
    )
    return PromotionResult(result, canary=outcome)
