"""The per-user registry of homes: every home whose commands may have left background
processes, so that ``ratchet status --all`` lists them and ``ratchet down --all`` stops them
wherever they are (never found by process name: another user's, or another tool's, are not
ours).

One file per home in ``$XDG_STATE_HOME/ratchet/homes/`` (default ``~/.local/state``), named
by the hash of its path and holding the path: two commands registering at once never
rewrite each other's entry. An entry whose folder is gone is dropped when listed. Only the
standard library.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ratchet.core.files import atomic_write


def registry_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "ratchet" / "homes"


def register(root: Path) -> None:
    root = root.resolve()
    entry = registry_dir() / hashlib.sha256(str(root).encode()).hexdigest()[:16]
    if not entry.exists():
        atomic_write(entry, str(root))


def registered() -> list[Path]:
    """The registered homes that still exist, sorted."""
    homes = []
    try:
        entries = list(registry_dir().iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            home = Path(entry.read_text().strip())
        except OSError:
            continue
        if home.is_dir():
            homes.append(home)
        else:
            entry.unlink(missing_ok=True)
    return sorted(homes)
