"""A person's approval between the offline gate and the canary (``release.approval: required``),
or after an inconclusive canary (``canary.on_inconclusive: approval``).

The release flow records the request (a ``approval_requested`` ledger entry, the tag
``approval=pending`` on the version, and ``<home>/approval.json``, which ``ratchet status``
shows as ``pending_approval``), publishes the gate's evidence, then waits (Prefect pauses the
run: ``tasks/approval.py``). The answer (``ratchet approve`` / ``ratchet reject``, or the run's
resume form in the UI) is settled here: ``approved``, ``rejected``, ``approval_timeout`` (no
answer in time: the champion is kept) or ``approval_superseded`` (a newer challenger took the
alias meanwhile), each a ledger entry with who and why, and tags on the version.

Core library: no Prefect. The answer comes in as a plain dict.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.core.files import atomic_write_json
from ratchet.promotion.decision import GateEvidence
from ratchet.training.versions import VersionMarks

if TYPE_CHECKING:  # the ledger brings SQLAlchemy: `ratchet status` reads a request without it
    from ratchet.promotion.ledger import Ledger

MARKER = "approval.json"
DECISIONS = {"approved": "approved", "rejected": "rejected", "timeout": "approval_timeout",
             "superseded": "approval_superseded"}  # decision -> ledger action


@dataclass(frozen=True)
class ApprovalRequest:
    model: str
    version: str  # the challenger waiting for a decision
    champion: str | None
    since: float
    reason: str  # "gate passed" | "first champion (floor met)" | "canary inconclusive"
    trigger: str
    flow_run_id: str | None = None
    flow_run_url: str | None = None
    ledger_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ApprovalAnswer:
    """A person's answer to a request (``ratchet approve``/``reject``, or the Prefect UI's form),
    or ratchet's own when a newer challenger supersedes the request (``superseded_by``)."""

    approve: bool
    comment: str = ""
    who: str = ""
    superseded_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ApprovalDecision:
    decision: str  # approved | rejected | timeout | superseded
    version: str
    champion: str | None
    who: str | None = None
    comment: str | None = None
    superseded_by: str | None = None
    ledger_id: int | None = None

    @property
    def approved(self) -> bool:
        return self.decision == "approved"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "approved": self.approved}


# ----------------------------------------------------------------------- the marker
def read_pending(root: Path) -> dict[str, Any] | None:
    """The pending request (``ratchet status``'s ``pending_approval``), or None."""
    path = Path(root) / MARKER
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _clear(root: Path, request: ApprovalRequest) -> None:
    """Remove the marker if it is still this request's (a newer one may have replaced it)."""
    pending = read_pending(root)
    if pending is not None and pending.get("flow_run_id") == request.flow_run_id \
            and pending.get("version") == request.version:
        (Path(root) / MARKER).unlink(missing_ok=True)


# ----------------------------------------------------------------------- request and answer
def request(registry, ledger: Ledger, root: Path, version: str, champion: str | None, trigger: str,
            evidence: GateEvidence, reason: str = "gate passed", flow_run_id: str | None = None,
            flow_run_url: str | None = None) -> ApprovalRequest:
    """Record that ``version`` waits for a person: the ledger, the version's tag, the marker."""
    from ratchet.promotion.ledger import Entry

    entry = ledger.append(Entry(
        action="approval_requested", trigger=trigger, model=registry.model_name, from_version=champion,
        to_version=version, data_commit=evidence.data_commit,
        evidence={"reason": reason, "flow_run_id": flow_run_id, "flow_run_url": flow_run_url, **evidence.to_dict()},
    ))
    req = ApprovalRequest(registry.model_name, str(version), champion, entry.ts, reason, trigger,
                          flow_run_id, flow_run_url, entry.id)
    registry.mark(req.version, VersionMarks(approval="pending"))
    atomic_write_json(Path(root) / MARKER, req.to_dict())
    return req


def decide(registry, answer: ApprovalAnswer | None, req: ApprovalRequest) -> str:
    """The decision an answer means: ``timeout`` without one, ``superseded`` when a newer
    challenger took the alias (or the answer says so), else approved or rejected."""
    if answer is None:
        return "timeout"
    if answer.superseded_by or registry.alias("challenger") != req.version:
        return "superseded"
    return "approved" if answer.approve else "rejected"


def settle(registry, ledger: Ledger, root: Path, req: ApprovalRequest, answer: ApprovalAnswer | None
           ) -> ApprovalDecision:
    """Record the answer (None: the timeout passed) in the ledger and the version's tags."""
    decision = decide(registry, answer, req)
    who, comment = (answer.who or None, answer.comment or None) if answer else (None, None)
    newer = (answer and answer.superseded_by) or (registry.alias("challenger") if decision == "superseded" else None)
    kept = "" if decision == "approved" else "; the champion is kept"
    from ratchet.promotion.ledger import Entry

    entry = ledger.append(Entry(
        action=DECISIONS[decision], trigger=req.trigger, model=req.model, from_version=req.champion,
        to_version=req.version, traffic=None,
        evidence={"decision": decision, "who": who, "comment": comment, "superseded_by": newer,
                  "requested_at": req.since, "request_ledger_id": req.ledger_id,
                  "waited_s": round(time.time() - req.since, 3), "flow_run_url": req.flow_run_url,
                  "summary": f"{decision}{f' by {who}' if who else ''}{kept}"},
    ))
    registry.mark(req.version, VersionMarks(approval=decision, approval_by=who, approval_comment=comment))
    _clear(root, req)
    return ApprovalDecision(decision, req.version, req.champion, who, comment, newer, entry.id)


def to_supersede(root: Path, current_challenger: str | None) -> dict[str, Any] | None:
    """The pending request a newer challenger supersedes: one for another version, or None."""
    pending = read_pending(root)
    if pending is None or current_challenger is None or pending.get("version") == str(current_challenger):
        return None
    return pending


def check_answerable(root: Path, version: str | None) -> dict[str, Any]:
    """The pending request ``ratchet approve [VERSION]`` answers; ``LookupError`` naming why not."""
    pending = read_pending(root)
    if pending is None:
        raise LookupError("no release waits for approval (`ratchet status` shows pending_approval)")
    if version is not None and str(version) != pending.get("version"):
        raise LookupError(f"version {version} does not wait for approval; version {pending.get('version')} does")
    if not pending.get("flow_run_id"):
        raise LookupError("the pending approval names no flow run to resume")
    return pending


# ----------------------------------------------------------------------- the evidence
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


HEADLINE = ("metric", "champion", "challenger", "difference", "improvement", "improvement_ci", "difference_ci",
            "p_value", "test", "alpha", "min_effect", "data_commit", "data_window", "test_rows")


def evidence_markdown(req: ApprovalRequest, decision: str, reasons: list[str], evidence: GateEvidence,
                      lineage: dict[str, Any] | None = None) -> str:
    """What a person reads before approving: the gate's decision and reasons, its numbers
    (metric, scores, difference, interval, p-value), slices, the data window, the lineage, and
    how to answer."""
    lines = [
        f"# approval requested: {req.model} v{req.version} "
        + (f"(champion v{req.champion})" if req.champion else "(no champion yet: the first to serve)"),
        "",
        f"- why: {req.reason}; gate decision **{decision}**",
        f"- requested: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(req.since))}",
        f"- answer: `ratchet approve {req.version} --comment ...` or `ratchet reject {req.version}`"
        + (f", or resume [the flow run]({req.flow_run_url})" if req.flow_run_url else ""),
        "",
        "## the gate",
        "",
        *[f"- {r}" for r in reasons],
        "",
        "| evidence | value |",
        "|---|---|",
    ]
    given = evidence.to_dict()  # the figures that were set, in the order the gate gave them
    shown = [k for k in HEADLINE if k in given]
    shown += [k for k, v in given.items() if k not in HEADLINE and isinstance(v, (int, float, str))]
    lines += [f"| {k} | {_fmt(given[k])} |" for k in shown]
    for key, value in (("slices", evidence.slices), ("checks", evidence.checks), ("canary", evidence.canary)):
        if value:
            lines += ["", f"## {key}", "", "```json", json.dumps(value, indent=1, default=str)[:6000], "```"]
    if lineage:
        lines += ["", "## lineage", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in lineage.items()
                  if k not in ("params", "metrics", "data_profile") and v is not None]
    return "\n".join(lines)


def with_approval(evaluation, decision: ApprovalDecision, canary: Any = None):
    """The gate's evaluation with the approval (and, after an inconclusive canary, the canary's
    result) in its evidence, so the promotion's ledger entry carries who approved and why."""
    from dataclasses import replace

    extra: dict[str, Any] = {"approval": decision.to_dict()}
    if canary is not None:
        extra["canary"] = canary.to_dict() if hasattr(canary, "to_dict") else canary
    return replace(evaluation, evidence=evaluation.evidence.with_(**extra))


def kept(decision: ApprovalDecision):
    """What a release that was not approved ends with: the champion stays; the action names why."""
    from ratchet.promotion.promote import Outcome

    return Outcome(DECISIONS[decision.decision], decision.champion, ledger_id=decision.ledger_id)


def request_markdown(repo, registry, req: ApprovalRequest, evaluation, evidence: GateEvidence | None) -> str:
    """``evidence_markdown`` of a request, with the challenger's lineage when it can be read: the
    approval-request artifact, and the text above the Prefect UI's resume form."""
    lineage = lineage_or_none(repo, registry, req.version)
    return evidence_markdown(req, evaluation.decision, evaluation.reasons, evidence or GateEvidence(), lineage)


def lineage_or_none(repo, registry, version: str) -> dict[str, Any] | None:
    """The version's lineage for the evidence, None when the registry or repository cannot say."""
    from ratchet.training.lineage import lineage

    try:
        return lineage(repo, registry, version)
    except Exception:  # a version registered outside `ratchet train` (no data commit to read)
        return None


def drop_stale(root: Path, flow_run_id: str | None) -> None:
    """Remove a marker whose flow run no longer waits (its process died, it was cancelled)."""
    pending = read_pending(root)
    if pending is not None and pending.get("flow_run_id") == flow_run_id:
        (Path(root) / MARKER).unlink(missing_ok=True)
