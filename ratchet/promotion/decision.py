"""The gate's decision as a value: light to import (no statistics stack), so the alias moves
and the emergency rollback can name it without loading scipy."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class GateEvidence(BaseModel):
    """What the gate saw, typed: the one contract between the gate and what reads its word
    (promotion, slices, approval, the canary's ledger entry, notifications, reports).

    The fields below are the ones read outside the gate. The rest of what a paired test
    reports (its statistic, discordant rows, the per-test p-values, the floor's metric ...)
    travels along as extra fields, shown in the approval page and stored in the ledger as is.
    Frozen: a later step adds to it with ``with_`` and gets a new value."""

    model_config = ConfigDict(extra="allow", frozen=True)

    task: str | None = None  # "regression", or unset for a classification target
    metric: str | None = None
    higher_is_better: bool | None = None
    n: int | None = None  # held-out rows both models scored
    challenger: float | None = None  # the challenger's metric
    champion: float | None = None  # the champion's metric; None without a champion
    difference: float | None = None  # challenger minus champion
    improvement: float | None = None  # positive: the challenger is better
    test: str | None = None
    p_value: float | None = None
    improvement_ci: list[float] | None = None
    difference_ci: list[float] | None = None
    alpha: float | None = None
    min_effect: float | None = None
    floor: float | None = None
    checks: dict[str, bool] = {}  # each check by name: passed or not
    guardrails: dict[str, Any] | None = None
    slices: dict[str, Any] | None = None  # with gate.slices: the per-slice tests
    # added by evaluate_challenger: which data the gate scored
    data_commit: str | None = None
    data_window: str | None = None  # the scored batches' label
    test_rows: int | None = None
    # added by the release: the canary's outcome (steps or a summary) and the approval's answer
    canary: Any = None
    approval: dict[str, Any] | None = None

    @classmethod
    def stored(cls, evidence: dict[str, Any]) -> GateEvidence:
        """The evidence of a ledger entry as stored, read without validation: an entry written
        by an earlier version, or by an action that is not the gate's, still reads."""
        return cls.model_construct(**evidence)

    def with_(self, **fields: Any) -> GateEvidence:
        """A copy with ``fields`` added or replaced."""
        return self.model_copy(update=fields)

    def to_dict(self) -> dict[str, Any]:
        """What the ledger stores and the approval page shows: the fields that were set."""
        return self.model_dump(exclude_unset=True)

    def headline(self) -> dict[str, Any]:
        """The few figures a summary line shows (ledger tables, the demo's report)."""
        return {"p_value": self.p_value, "difference": self.difference, "n": self.n}


@dataclass
class GateDecision:
    decision: Literal["promote", "keep"]
    reasons: list[str] = field(default_factory=list)
    evidence: GateEvidence = field(default_factory=GateEvidence)

    @property
    def promote(self) -> bool:
        return self.decision == "promote"

    def to_dict(self) -> dict[str, Any]:
        """Every field (a subclass's too: an ``Evaluation`` names the versions), as JSON-ready values."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**out, "reasons": list(self.reasons), "evidence": self.evidence.to_dict()}
