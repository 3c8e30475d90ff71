"""The gate's decision as a value: light to import (no statistics stack), so the alias moves
and the emergency rollback can name it without loading scipy."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass
class GateDecision:
    decision: Literal["promote", "keep"]
    reasons: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def promote(self) -> bool:
        return self.decision == "promote"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
