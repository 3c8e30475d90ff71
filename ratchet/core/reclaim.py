"""What one part of a garbage collection (``ratchet gc``) reclaimed, and file sizes.

Plain standard library: the data, training and runtime stages each collect their own part
and report it the same way.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Reclaimed:
    """One part's outcome: ``bytes`` freed (with ``dry_run``: that would be freed, nothing
    removed), how many things of each kind, the named ones (branches, versions) and what was
    kept that a reader might expect gone, with why."""

    part: str
    dry_run: bool
    bytes: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None  # why the part did nothing at all

    def add(self, kind: str, nbytes: int, item: str | None = None) -> None:
        self.bytes += nbytes
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if item is not None:
            self.items.append(item)

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "dry_run": self.dry_run, "bytes": self.bytes, "counts": dict(self.counts),
                "items": list(self.items), "kept": dict(self.kept), "skipped": self.skipped}


def path_bytes(path: Path | str) -> int:
    """Bytes of the file at ``path``, or of every file under the folder; 0 when missing."""
    path = Path(path)
    try:
        if not path.is_dir():
            return path.stat().st_size
    except FileNotFoundError:
        return 0
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                pass
    return total


def remove_path(path: Path | str, dry_run: bool = False) -> int:
    """Remove a file or a folder (missing: nothing to do); the bytes it held."""
    path = Path(path)
    nbytes = path_bytes(path)
    if not dry_run:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return nbytes
