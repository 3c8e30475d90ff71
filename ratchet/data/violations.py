"""What a batch check finds: ``Violation`` (an error rejects the batch; a warning is reported),
and ``BatchRejected``, the exception that carries them. Shared by reading (problems with the file)
and the audit (problems with its rows)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Violation:
    """One finding about a batch. ``column`` is None for file- and row-level rules.

    ``severity`` ``error`` rejects the batch; ``warning`` (unseen categories or out-of-range
    values under their share limit) is reported and rejects nothing. ``to_dict`` keeps the
    three keys of the report's lists (``violations`` holds errors, ``warnings`` the rest)."""

    column: str | None
    rule: str
    message: str
    severity: str = "error"

    @property
    def fatal(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["severity"]
        return d

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}" if self.fatal else f"[{self.rule}, {self.severity}] {self.message}"


class BatchRejected(Exception):
    def __init__(self, violations: list[Violation], source: str | None = None):
        if not violations:
            raise ValueError("BatchRejected needs at least one violation")
        self.violations = list(violations)
        self.source = source
        head = f"batch {source} rejected" if source else "batch rejected"
        lines = "\n".join(f"  - {v}" for v in self.violations)
        super().__init__(f"{head}: {len(self.violations)} violation(s)\n{lines}")

    @property
    def rules(self) -> list[str]:
        return [v.rule for v in self.violations]


def reject(rule: str, message: str, path: Path, column: str | None = None) -> BatchRejected:
    return BatchRejected([Violation(column, rule, message)], source=str(path))
