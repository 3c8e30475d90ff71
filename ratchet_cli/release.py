"""The release's commands: the gate (``evaluate``, ``promote``), the ``canary``, the emergency
``rollback``, and a person's answer to an approval (``approve``, ``reject``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ratchet.core.events import MODEL_PROMOTED, MODEL_ROLLED_BACK
from ratchet_cli.common import (
    JsonOpt,
    ctx_from_options,
    emit,
    ensure_server,
    fail,
    flow_result,
    forward_or_run,
    use_running_prefect,
)

app = typer.Typer()


@app.command()
def evaluate(as_json: JsonOpt = False) -> None:
    """Champion against challenger on the same held-out rows; print the gate's decision."""
    ensure_server(forward_or_run())
    from flows.promote import evaluate_flow

    result = flow_result(evaluate_flow, as_json, "evaluation failed", needs_schema=True)
    emit(result, as_json, f"{result['decision']}: " + "; ".join(result["reasons"]))


@app.command()
def promote(as_json: JsonOpt = False) -> None:
    """Evaluate, then move 'champion' to the challenger if the gate says promote."""
    ensure_server(forward_or_run())
    from flows.promote import promote_flow

    result = flow_result(promote_flow, as_json, "promotion failed", needs_schema=True)
    emit(result, as_json, f"{result['action']}: champion is version {result['champion']}")


@app.command()
def canary(
    challenger: Annotated[str | None, typer.Option(help="version to ramp (default: the 'challenger' alias)")] = None,
    service_url: Annotated[str | None, typer.Option(help="inference service (default: the running stack's)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ramp the challenger's traffic on the running service; promote, or roll back on a breach."""
    ensure_server(forward_or_run())
    from flows.canary import canary_flow

    result = flow_result(canary_flow, as_json, "canary failed", challenger=challenger, service_url=service_url,
                         trigger="cli")
    steps = ", ".join(f"{s['share']:.0%} {s['decision']}" for s in result["steps"])
    if result["action"] == "promote":  # no release around it announces the promotion: say it here
        from ratchet.delivery.notify import message

        model = ctx_from_options().cfg.model_name
        result["event_sent"] = _notify_orchestrator(MODEL_PROMOTED, model, message(
            model, "promote", result["champion"], result["challenger"], f"canary passed ({steps})", None))
        emit(result, as_json, f"promoted version {result['champion']} to champion (was {result.get('previous')}; "
             f"canary {steps})")
        return
    emit(result, as_json, f"{result['action']} ({steps}): champion is version {result['champion']}")


@app.command()
def rollback(
    to: Annotated[str | None, typer.Option(help="version to restore (default: 'previous')")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore the previous champion now, without waiting for the orchestrator."""
    from ratchet.promotion.promote import PromotionError
    from ratchet.promotion.promote import rollback as do_rollback

    t0 = time.perf_counter()
    ctx = ctx_from_options()
    try:
        out = do_rollback(ctx.registry, ctx.ledger, to, trigger="cli").to_dict()
    except (PromotionError, LookupError) as e:
        fail(str(e), as_json)
    except Exception as e:  # MLflow raises its own error for an unknown version
        fail(f"rollback failed: {e}", as_json)
    out["seconds"] = round(time.perf_counter() - t0, 3)
    out["event_sent"] = _notify_orchestrator(MODEL_ROLLED_BACK, ctx.cfg.model_name, out)
    emit(out, as_json, f"rolled back: champion is version {out['champion']} (was {out['previous']})")


def _notify_orchestrator(event: str, model: str, payload: dict[str, Any]) -> bool:
    """Send a Prefect event when a Prefect server is configured; never block or fail on it."""
    if not use_running_prefect():
        return False
    try:
        from ratchet_prefect.events import emit_model_event

        emit_model_event(event, model, payload)
        return True
    except Exception as e:  # the rollback itself already happened
        typer.secho(f"warning: could not send {event} to Prefect: {e}", err=True, fg=typer.colors.YELLOW)
        return False


def pending_approval(root: Path) -> dict[str, Any] | None:
    from ratchet.delivery.approval import read_pending

    p = read_pending(root)
    keys = ("version", "champion", "since", "flow_run_url", "flow_run_id", "reason")  # champion None: the first
    return None if p is None else {k: p.get(k) for k in keys}


def _answer_approval(approve: bool, version: str | None, comment: str, who: str | None, as_json: bool) -> None:
    """Resume the release run that waits for approval with the answer, through the Prefect API."""
    import getpass

    from ratchet.delivery.approval import ApprovalAnswer, check_answerable

    ctx = ctx_from_options()
    try:
        pending = check_answerable(ctx.settings.root, version)
    except LookupError as e:
        fail(str(e), as_json)
    ensure_server(forward_or_run())
    from ratchet_prefect.approval import resume_paused_run

    answer = ApprovalAnswer(approve=approve, comment=comment, who=who or getpass.getuser())
    try:
        resume_paused_run(pending["flow_run_id"], answer)
    except Exception as e:  # the run no longer waits, or no Prefect server answers
        fail(f"could not resume the release of version {pending['version']}: {e}", as_json)
    verb = "approved" if approve else "rejected"
    emit({"approve": approve, "comment": comment, "who": answer.who, "decision": verb, "version": pending["version"],
          "flow_run_id": pending["flow_run_id"], "flow_run_url": pending.get("flow_run_url")}, as_json,
         f"{verb} version {pending['version']}: its release resumes ({pending.get('flow_run_url') or pending['flow_run_id']})")


@app.command()
def approve(
    version: Annotated[str | None, typer.Argument(help="the version waiting (default: the pending one)")] = None,
    comment: Annotated[str, typer.Option(help="why; kept in the ledger and on the version")] = "",
    who: Annotated[str | None, typer.Option(help="who approves (default: the user name)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve the challenger whose release waits for approval: its release goes on (canary or promotion)."""
    _answer_approval(True, version, comment, who, as_json)


@app.command()
def reject(
    version: Annotated[str | None, typer.Argument(help="the version waiting (default: the pending one)")] = None,
    comment: Annotated[str, typer.Option(help="why; kept in the ledger and on the version")] = "",
    who: Annotated[str | None, typer.Option(help="who rejects (default: the user name)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject the challenger whose release waits for approval: the champion is kept."""
    _answer_approval(False, version, comment, who, as_json)
