"""What a training run hands to the next stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainResult:
    """The registered version (the ``challenger``), or the one that had already learnt this
    data window with this config and code (``skipped``)."""

    model_version: str
    data_commit: str
    window_batches: int | None = None
    run_id: str | None = None
    study: str | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
