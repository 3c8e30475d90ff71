"""Pausing a release run for a person's decision, and resuming it with the answer.

The run pauses with ``pause_flow_run(wait_for_input=ApprovalInput)``: Prefect's UI shows a
resume form for ``ApprovalInput``; ``ratchet approve`` / ``ratchet reject`` resume it through the
client (``resume_paused_run``) with the same input. No answer within the timeout: the run is set
Running again and the release records that the champion is kept.
"""

from __future__ import annotations

from dataclasses import fields
from uuid import UUID

from prefect.input import RunInput
from pydantic import Field

from ratchet.delivery import approval
from ratchet.delivery.approval import ApprovalAnswer
from ratchet.runtime.context import Context

ANSWER_FIELDS = {f.name for f in fields(ApprovalAnswer)}


class ApprovalInput(RunInput):
    """The form of an ``ApprovalAnswer``: what the Prefect UI shows a paused release with."""

    approve: bool = Field(description="true: ramp (or promote) the challenger; false: keep the champion")
    comment: str = Field("", description="why: kept in the ledger and on the version's tags")
    who: str = Field("", description="who decided")
    superseded_by: str | None = Field(None, description="set by ratchet when a newer challenger arrived")


def await_answer(timeout_s: int, poll_s: int, description: str | None = None) -> ApprovalAnswer | None:
    """Pause this flow run until an answer; None when none came within ``timeout_s`` (the run
    is then set Running again, so the release can record the keep and finish). ``description``
    (markdown: the gate's evidence) is shown above the UI's resume form."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run
    from prefect.runtime import flow_run
    from prefect.states import Running

    try:
        form = ApprovalInput.with_initial_data(description=description) if description else ApprovalInput
        answer = pause_flow_run(wait_for_input=form, timeout=timeout_s, poll_interval=poll_s)
    except FlowPauseTimeout:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(UUID(flow_run.id), Running(message="no approval in time"), force=True)
        return None
    return ApprovalAnswer(**answer.model_dump(include=ANSWER_FIELDS))


def resume_paused_run(flow_run_id: str, answer: ApprovalAnswer, wait_s: float = 30.0) -> None:
    """Resume the paused run with ``answer`` (an ``ApprovalInput``); RuntimeError with the
    server's reason when it does not take it (the run no longer waits). The request is
    recorded just before the run pauses, so an answer that comes in between waits up to
    ``wait_s`` for the pause instead of failing."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.responses import SetStateStatus

    run_input = ApprovalInput(**answer.to_dict()).model_dump(include=ANSWER_FIELDS)
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


def supersede_pending(ctx: Context) -> str | None:
    """A newer challenger supersedes a pending approval of an older one: resume that run with
    ``superseded_by`` (or drop its marker when the run no longer waits); the version superseded, or None."""
    newer = ctx.registry.alias("challenger")
    pending = approval.to_supersede(ctx.settings.root, newer)
    if pending is None:
        return None
    try:
        resume_paused_run(pending["flow_run_id"], ApprovalAnswer(
            approve=False, who="ratchet", superseded_by=newer, comment=f"superseded by v{newer}"))
    except Exception as e:  # the old run no longer waits: only its marker is left
        print(f"pending approval of v{pending.get('version')} not resumed ({e}): marker dropped")
        approval.drop_stale(ctx.settings.root, pending.get("flow_run_id"))
    return pending.get("version")
