"""A monitoring run's finding as a value: light to import (pydantic only), so ``ratchet status``
reads ``drift.json`` without loading the profiling stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class DriftResult(BaseModel):
    """One monitoring run's finding on the champion's live traffic: the contract between the
    monitor, the flow that announces drift, ``ratchet status`` and the drift history.

    ``detected`` and ``kind`` (``data``, ``concept``, ``estimated``) say whether to retrain; the
    per-feature tests (``features``) and the nested checks (``concept``, ``estimated``,
    ``live_error``) say why. Other figures of the drift report travel along as extra fields."""

    model_config = ConfigDict(extra="allow")

    checked_at: float
    champion: str | None = None
    detected: bool = False
    kind: str | None = None
    reason: str | None = None
    onset: Any = None  # the concept check's window label where the change began
    drifted_features: list[str] | None = None
    drifted_share: float | None = None
    features: dict[str, dict[str, Any]] | None = None
    html: str | None = None
    # live quality: labels (feedback), the estimate without labels, a regression's live error
    feedback_total: int | None = None
    correct_total: int | None = None
    feedback: int | None = None
    live_accuracy: float | None = None
    concept: dict[str, Any] | None = None
    estimated_sums: dict[str, Any] | None = None
    estimated: dict[str, Any] | None = None
    estimated_accuracy: float | None = None
    live_error: dict[str, Any] | None = None
    live_mae: float | None = None
    live_rmse: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)

    def announcement(self) -> dict[str, Any]:
        """What the ``ratchet.drift.detected`` event carries."""
        return {"champion": self.champion, "kind": self.kind, "onset": self.onset,
                "drifted_features": self.drifted_features, "drifted_share": self.drifted_share,
                "live_accuracy": self.live_accuracy, "estimated_accuracy": self.estimated_accuracy,
                "reason": self.reason}

    def summary(self) -> dict[str, Any]:
        """What ``ratchet status`` shows of it."""
        return {"checked_at": self.checked_at, "champion": self.champion, "detected": self.detected,
                "kind": self.kind, "drifted_share": self.drifted_share, "drifted_features": self.drifted_features,
                "live_accuracy": self.live_accuracy, "estimated_accuracy": self.estimated_accuracy}

    @classmethod
    def read(cls, path: Path) -> DriftResult | None:
        """The result a run wrote (``drift.json``, a history line), None when there is none."""
        return cls.model_validate_json(Path(path).read_text()) if Path(path).exists() else None
