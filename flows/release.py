"""A new challenger: the offline gate first, then the rollout.

The gate keeps it out, or the canary ramps it on the running inference service and promotes
it or rolls it back on live metrics. Without a service (``canary.on_release: auto`` and none
answers, or ``never``), and for the very first model (nothing to compare it with live), the
gate's promotion is the rollout.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.canary import canary_flow
from ratchet.runtime.context import load_context
from tasks.canary import find_service
from tasks.promotion import evaluate_challenger, promote_challenger, publish_ledger


@flow(name="release", log_prints=True)
def release_flow(
    trigger: str = "challenger registered",
    config_files: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    home: str | None = None,
    service_url: str | None = None,
) -> dict[str, Any]:
    ctx = load_context(config_files, overrides, home)
    result = evaluate_challenger(ctx)
    print(f"gate: {result['decision']} ({'; '.join(result['reasons'])})")
    url = None
    if result["decision"] == "promote" and result["champion"] is not None:
        url = find_service(ctx, service_url)
    if url is None:
        moved = promote_challenger(ctx, result, trigger)
        publish_ledger(ctx)
        print(f"{moved['action']}: champion is v{moved['champion']}")
        return {**moved, "decision": result["decision"], "evidence": result["evidence"], "canary": None}
    outcome = canary_flow(
        challenger=result["challenger"], service_url=url, trigger=trigger,
        config_files=config_files, overrides=overrides, home=home, gate=result["evidence"],
    )
    return {**outcome, "decision": result["decision"], "evidence": result["evidence"], "canary": outcome["steps"]}
