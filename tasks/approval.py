"""Approval stage: the release pauses for a person's decision (``release.approval: required``,
or ``canary.on_inconclusive: approval``) and resumes with it.

The run pauses with ``pause_flow_run(wait_for_input=ApprovalInput)``: Prefect's UI shows a
resume form for ``ApprovalInput``; ``ratchet approve`` / ``ratchet reject`` resume it through the
client (``resume_paused_run``) with the same input. No answer within
``release.approval_timeout_s``: the run is set Running again and the champion is kept.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import Field

from ratchet.delivery import approval
from ratchet.delivery.approval import ApprovalDecision, ApprovalRequest
from ratchet.runtime.context import Context


class ApprovalInput(RunInput):
    """The answer to an approval request."""

    approve: bool = Field(description="true: ramp (or promote) the challenger; false: keep the champion")
    comment: str = Field("", description="why: kept in the ledger and on the version's tags")
    who: str = Field("", description="who decided")
    superseded_by: str | None = Field(None, description="set by ratchet when a newer challenger arrived")


def _await_answer(timeout_s: int, poll_s: int, description: str | None = None) -> dict[str, Any] | None:
    """Pause this flow run until an answer; None when none came within ``timeout_s`` (the run
    is then set Running again, so the release can record the keep and finish). ``description``
    (markdown: the gate's evidence) is shown above the UI's resume form."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run
    from prefect.states import Running

    try:
        form = ApprovalInput.with_initial_data(description=description) if description else ApprovalInput
        answer = pause_flow_run(wait_for_input=form, timeout=timeout_s, poll_interval=poll_s)
    except FlowPauseTimeout:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(UUID(flow_run.id), Running(message="no approval in time"), force=True)
        return None
    return answer.model_dump(include={"approve", "comment", "who", "superseded_by"})


def resume_paused_run(flow_run_id: str, answer: dict[str, Any], wait_s: float = 30.0) -> None:
    """Resume the paused run with ``answer`` (an ``ApprovalInput``); RuntimeError with the
    server's reason when it does not take it (the run no longer waits). The request is
    recorded just before the run pauses, so an answer that comes in between waits up to
    ``wait_s`` for the pause instead of failing."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.responses import SetStateStatus

    run_input = ApprovalInput(**answer).model_dump(include={"approve", "comment", "who", "superseded_by"})
    deadline = time.monotonic() + wait_s
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(UUID(flow_run_id)).state
            if state is not None and state.is_paused():
                result = client.resume_flow_run(UUID(flow_run_id), run_input=run_input)
                if result.status == SetStateStatus.ACCEPT:
                    return
            elif state is None or state.is_final() or time.monotonic() > deadline:
                reason = getattr(state, "name", "unknown")
                raise RuntimeError(f"flow run {flow_run_id} does not wait for an answer (its state: {reason})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"flow run {flow_run_id} did not resume: "
                                   f"{getattr(result.details, 'reason', result.status)}")
            time.sleep(0.5)


def _supersede(ctx: Context, pending: dict[str, Any] | None) -> str | None:
    if pending is None:
        return None
    newer = ctx.registry.alias("challenger")
    try:
        resume_paused_run(pending["flow_run_id"], {"approve": False, "who": "ratchet", "superseded_by": newer,
                                                   "comment": f"superseded by v{newer}"})
    except Exception as e:  # the old run no longer waits: only its marker is left
        print(f"pending approval of v{pending.get('version')} not resumed ({e}): marker dropped")
        approval.drop_stale(ctx.settings.root, pending.get("flow_run_id"))
    return pending.get("version")


@task(cache_policy=NO_CACHE)
def supersede_pending_approval(ctx: Context) -> str | None:
    """A newer challenger supersedes a pending approval of an older one: resume that run with
    ``superseded_by``; the version superseded, or None."""
    return _supersede(ctx, approval.to_supersede(ctx.settings.root, ctx.registry.alias("challenger")))


@task(cache_policy=NO_CACHE)
def request_approval(ctx: Context, evaluation, evidence: dict[str, Any], trigger: str, reason: str) -> ApprovalRequest:
    """Record the request (ledger, tag, ``pending_approval``) and publish the evidence to read."""
    req = approval.request(ctx.registry, ctx.ledger, ctx.settings.root, evaluation.challenger, evaluation.champion,
                           trigger, evidence, reason, flow_run.id, flow_run.ui_url)
    create_markdown_artifact(_evidence_markdown(ctx, req, evaluation, evidence),
                             key="approval-request", description=f"approve v{req.version}?")
    return req


def _evidence_markdown(ctx: Context, req: ApprovalRequest, evaluation, evidence: dict[str, Any]) -> str:
    lineage = approval.lineage_or_none(ctx.repo, ctx.registry, req.version)
    return approval.evidence_markdown(req, evaluation.decision, evaluation.reasons, evidence, lineage)


@task(cache_policy=NO_CACHE)
def wait_for_approval(ctx: Context, req: ApprovalRequest | None = None, evaluation=None,
                      evidence: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Pause for the answer; with the request, the UI's resume form shows the gate's evidence."""
    description = _evidence_markdown(ctx, req, evaluation, evidence or {}) if req and evaluation else None
    return _await_answer(ctx.cfg.release.approval_timeout_s, ctx.cfg.release.approval_poll_s, description)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def record_approval(ctx: Context, req: ApprovalRequest, answer: dict[str, Any] | None) -> ApprovalDecision:
    return approval.settle(ctx.registry, ctx.ledger, ctx.settings.root, req, answer)
