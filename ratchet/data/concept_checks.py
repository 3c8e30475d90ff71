"""A concept-drift verdict as stored on a batch's commit (``ratchet.concept.*`` metadata): the record
``ratchet.monitoring.concept`` writes at ingest, and its reader. Here, below training and promotion,
so that the window walk and the gate read it typed rather than by key."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ratchet.data.repository.base import DataRepository

META = "ratchet.concept."  # prefix of the commit-metadata keys a batch's score is stored under


@dataclass(frozen=True)
class ConceptCheck:
    """The verdict on the newest sample: its p-value against the champion's held-out error,
    the alpha it was held to (the ``index``-th test against this champion), and, when a
    change is detected, the sample where it began (``onset``)."""

    champion: str
    label: str
    rows: int
    error: float
    baseline_error: float
    p_value: float
    alpha: float
    index: int
    detected: bool
    onset: str | None = None
    regression: bool = False

    @property
    def score(self) -> float:
        """What people read: accuracy (share right), or RMSE for regression."""
        return math.sqrt(self.error) if self.regression else 1.0 - self.error

    def metadata(self) -> dict[str, str]:
        """Commit-metadata strings (``ratchet.concept.*``) a batch's verdict is stored as."""
        out = {f"{META}{k}": str(v) for k, v in asdict(self).items() if v is not None}
        out[f"{META}score"] = f"{self.score:.6g}"
        return out

    @classmethod
    def from_metadata(cls, md: dict[str, str]) -> ConceptCheck | None:
        if f"{META}champion" not in md:
            return None
        get = lambda k: md.get(f"{META}{k}")  # noqa: E731
        return cls(
            champion=get("champion"), label=get("label"), rows=int(get("rows")), error=float(get("error")),
            baseline_error=float(get("baseline_error")), p_value=float(get("p_value")),
            alpha=float(get("alpha")), index=int(get("index")), detected=get("detected") == "True",
            onset=get("onset"), regression=get("regression") == "True",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"score": self.score, "kind": "concept"}


def scored_history(repo: DataRepository, ref: str, champion: str) -> list[ConceptCheck]:
    """Verdicts already recorded on batches at ``ref`` against ``champion``, oldest first."""
    seen, out = set(), []
    for c in repo.log(ref):
        found = ConceptCheck.from_metadata(c.metadata)
        if found is not None and found.champion == champion and found.label not in seen:
            seen.add(found.label)
            out.append(found)
    return out[::-1]
