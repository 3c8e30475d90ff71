"""Evaluate the challenger against the champion; promote only on the gate's word."""

from __future__ import annotations

from prefect import flow

from ratchet.promotion.promote import Evaluation, Outcome, PromotionResult
from ratchet.runtime.options import RunOptions
from tasks.promotion import evaluate_challenger, promote_challenger, publish_ledger, rollback_champion


@flow(name="evaluate", log_prints=True)
def evaluate_flow(options: RunOptions = RunOptions()) -> Evaluation:
    """The gate's decision on the challenger against the champion; nothing moves.

    Args:
        options: config files, overrides and home (left at the default by deployments)
    """
    result = evaluate_challenger(options.context())
    print(f"decision: {result.decision} ({'; '.join(result.reasons)})")
    return result


@flow(name="promote", log_prints=True)
def promote_flow(
    trigger: str = "manual", options: RunOptions = RunOptions(), evaluation: Evaluation | None = None
) -> PromotionResult:
    """The gate, then the champion alias moved to the challenger when it says promote.

    Args:
        trigger: why this run (kept in the ledger)
        options: config files, overrides and home (left at the default by deployments)
        evaluation: set by the release flow, which ran the gate already; leave empty to run it
    """
    ctx = options.context()
    result = evaluation or evaluate_challenger(ctx)
    moved = promote_challenger(ctx, result, trigger)
    publish_ledger(ctx)
    print(f"{moved.action}: champion is v{moved.champion}")
    return PromotionResult(result, moved)


@flow(name="rollback", log_prints=True)
def rollback_flow(to: str | None = None, trigger: str = "manual", options: RunOptions = RunOptions()) -> Outcome:
    """Restore an earlier champion.

    Args:
        to: the version to restore (default: the 'previous' alias)
        trigger: why this run (kept in the ledger)
        options: config files, overrides and home (left at the default by deployments)
    """
    ctx = options.context()
    moved = rollback_champion(ctx, to, trigger)
    publish_ledger(ctx)
    return moved
