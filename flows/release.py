"""A new challenger: the offline gate first, then (``release.approval: required``) a person's
approval, then the rollout.

The gate keeps it out, or the canary ramps it on the running inference service and promotes
it or rolls it back on live metrics. Without a service (``canary.on_release: auto`` and none
answers, or ``never``), and for the very first model (nothing to compare it with live), the
gate's promotion is the rollout: the promote flow's own path. With approval required the run
pauses after the gate (the evidence published as an artifact) until ``ratchet approve`` /
``ratchet reject`` or the timeout (keep), the very first champion included: the first model to
reach users is the one that most needs a signature. A rollback never waits. A canary that ends ``inconclusive`` keeps the
champion; with ``canary.on_inconclusive: approval`` a person may promote the challenger anyway.
A newer challenger's release supersedes a pending approval of an older one.
"""

from __future__ import annotations

from prefect import flow

from flows.canary import canary_flow
from flows.promote import promote_flow
from ratchet.delivery.approval import ApprovalDecision, kept, with_approval
from ratchet.promotion.decision import GateEvidence
from ratchet.promotion.promote import Evaluation, PromotionResult
from ratchet.runtime.context import Context
from ratchet.runtime.options import RunOptions
from tasks.approval import record_approval, request_approval, supersede_pending_approval, wait_for_approval
from tasks.canary import find_service
from tasks.notify import announce_approval_request, announce_release_outcome
from tasks.promotion import evaluate_challenger


def _approval(ctx: Context, result: Evaluation, evidence: GateEvidence, trigger: str, reason: str) -> ApprovalDecision:
    """Ask (announced: ``ratchet.model.approval_requested``), pause for the answer, record it."""
    request = request_approval(ctx, result, evidence, trigger, reason)
    announce_approval_request(ctx, request)
    return record_approval(ctx, request, wait_for_approval(ctx, request, result, evidence))


def _rollout(ctx: Context, result: Evaluation, service_url: str | None, trigger: str, here: RunOptions
             ) -> PromotionResult:
    """The canary on a ready service, else the gate's promotion; an inconclusive canary may
    still be promoted by a person (``canary.on_inconclusive: approval``)."""
    url = find_service(ctx, service_url) if result.promote and result.champion is not None else None
    if url is None:
        return promote_flow(trigger=trigger, options=here, evaluation=result)
    outcome = canary_flow(challenger=result.challenger, service_url=url, trigger=trigger, options=here,
                          gate=result.evidence)
    if outcome.action == "inconclusive" and ctx.cfg.canary.on_inconclusive == "approval":
        decision = _approval(ctx, result, result.evidence.with_(canary=outcome.to_dict()), trigger,
                             "canary inconclusive")
        if decision.approved:
            return promote_flow(trigger=trigger, options=here, evaluation=with_approval(result, decision, outcome))
    return PromotionResult(result, canary=outcome)


@flow(name="release", log_prints=True)
def release_flow(
    trigger: str = "challenger registered",
    service_url: str | None = None,
    options: RunOptions = RunOptions(),
) -> PromotionResult:
    """The gate, an approval when required, then the canary or the promotion.

    Args:
        trigger: why this release runs (kept in the ledger)
        service_url: the inference service for the canary (default: the running stack's)
        options: config files, overrides and home (left at the default by deployments)
    """
    ctx = options.context()
    supersede_pending_approval(ctx)
    result = evaluate_challenger(ctx)
    print(f"gate: {result.decision} ({'; '.join(result.reasons)})")
    decision = None
    if result.promote and ctx.cfg.release.approval == "required":  # the first champion too
        reason = "gate passed" if result.champion is not None else "first champion (floor met)"
        decision = _approval(ctx, result, result.evidence, trigger, reason)
        print(f"approval: {decision.decision}{f' by {decision.who}' if decision.who else ''}")
    if decision is not None and not decision.approved:
        released = PromotionResult(result, kept(decision))
    else:
        approved = result if decision is None else with_approval(result, decision)
        released = _rollout(ctx, approved, service_url, trigger, options.at_home(str(ctx.settings.root)))
    announce_release_outcome(ctx, released)
    return released
