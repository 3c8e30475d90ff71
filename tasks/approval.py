"""Approval stage: the release pauses for a person's decision (``release.approval: required``,
or ``canary.on_inconclusive: approval``) and resumes with it (``ratchet_prefect.approval``).
No answer within ``release.approval_timeout_s``: the champion is kept.
"""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from ratchet.delivery import approval
from ratchet.delivery.approval import ApprovalAnswer, ApprovalDecision, ApprovalRequest
from ratchet.promotion.decision import GateEvidence
from ratchet.runtime.context import Context
from ratchet_prefect import approval as prefect_approval
from ratchet_prefect.options import STORE_BUSY, task


@task
def supersede_pending_approval(ctx: Context) -> str | None:
    """A newer challenger supersedes a pending approval of an older one: resume that run with
    ``superseded_by``; the version superseded, or None."""
    return prefect_approval.supersede_pending(ctx)


@task
def request_approval(ctx: Context, evaluation, evidence: GateEvidence, trigger: str, reason: str) -> ApprovalRequest:
    """Record the request (ledger, tag, ``pending_approval``) and publish the evidence to read."""
    req = approval.request(ctx.registry, ctx.ledger, ctx.settings.root, evaluation.challenger, evaluation.champion,
                           trigger, evidence, reason, flow_run.id, flow_run.ui_url)
    create_markdown_artifact(approval.request_markdown(ctx.repo, ctx.registry, req, evaluation, evidence),
                             key="approval-request", description=f"approve v{req.version}?")
    return req


@task
def wait_for_approval(ctx: Context, req: ApprovalRequest | None = None, evaluation=None,
                      evidence: GateEvidence | None = None) -> ApprovalAnswer | None:
    """Pause for the answer; with the request, the UI's resume form shows the gate's evidence."""
    description = approval.request_markdown(ctx.repo, ctx.registry, req, evaluation, evidence) if req else None
    return prefect_approval.await_answer(ctx.cfg.release.approval_timeout_s, ctx.cfg.release.approval_poll_s,
                                         description)


@task(**STORE_BUSY)
def record_approval(ctx: Context, req: ApprovalRequest, answer: ApprovalAnswer | None) -> ApprovalDecision:
    return approval.settle(ctx.registry, ctx.ledger, ctx.settings.root, req, answer)
