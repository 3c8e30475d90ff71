"""What a canary's steps and the canary itself end with: typed results that travel between
the tasks and flows (and into the promotion's ``PromotionResult``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

# kept by ``CanaryResult.to_dict`` even when None; the other fields only when set
_ALWAYS = ("action", "champion", "challenger", "steps")


@dataclass
class StepResult:
    share: float
    decision: str  # pass | breach | insufficient | superseded
    seconds: float
    breaches: list[str]
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CanaryResult:
    """How a canary ended: ``promote`` (``noop`` when the challenger was the champion already),
    ``rollback`` (a guardrail breached), ``inconclusive`` (a step lacked evidence: too little
    traffic or feedback; nothing moved, the challenger keeps its alias) or ``superseded``; the champion after it; once the report is published, one
    row per step (``report.step_rows``) and the ramp's plot."""

    action: str
    champion: str | None
    challenger: str
    previous: str | None = None  # the champion a promotion replaced
    reason: list[str] | None = None  # what ended a canary early (None: every step passed)
    ledger_id: int | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    plot: str | None = None

    def with_report(self, rows: list[dict[str, Any]], plot: Path | str) -> CanaryResult:
        return replace(self, steps=list(rows), plot=str(plot))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k in _ALWAYS}
