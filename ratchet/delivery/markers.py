"""The marker of a running canary, and the abort of one whose process died.

A canary whose process dies leaves ``canary.json`` in the service's state folder;
``abort_interrupted`` (run by ``ratchet down`` and ``ratchet up``) sets the share back to 0
and records the abort.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ratchet.core.files import atomic_write_json
from ratchet.promotion.ledger import Entry, Ledger

if TYPE_CHECKING:
    from ratchet.delivery.guardrails import CanaryMonitor

MARKER = "canary.json"


def mark_running(state_dir: Path, monitor: CanaryMonitor, trigger: str) -> Path:
    """``state_dir/canary.json`` while a canary runs: if its process dies (``ratchet down``, a
    killed worker) the file is left behind, and ``abort_interrupted`` finds it."""
    return atomic_write_json(
        Path(state_dir) / MARKER,
        {"champion": monitor.champion, "challenger": monitor.challenger, "trigger": trigger,
         "started_at": monitor.started_at},
    )


def clear_running(state_dir: Path) -> None:
    (Path(state_dir) / MARKER).unlink(missing_ok=True)


def abort_interrupted(state_dir: Path, ledger: Ledger, model: str, reason: str) -> Entry | None:
    """A canary that did not end (its marker is still there): put the challenger's share back to 0
    in the traffic file, so no restarted service routes to an unwatched challenger, and record an
    ``abort`` in the ledger. The aliases are not touched: the champion stays the champion (a
    promotion that had started is all-or-nothing), and the challenger keeps its alias, so
    ``ratchet canary`` can run it again. Call it with the service stopped."""
    from ratchet.serving.traffic_split import TRAFFIC_FILE, Traffic, read_traffic, write_traffic

    path = Path(state_dir) / MARKER
    if not path.exists():
        return None
    try:
        marker = json.loads(path.read_text())
    except ValueError:
        marker = {}
    traffic_file = Path(state_dir) / TRAFFIC_FILE
    try:
        share = read_traffic(traffic_file).challenger_share
    except ValueError:  # a damaged traffic file: all champion is the safe state
        share = None
    write_traffic(traffic_file, Traffic())
    entry = ledger.append(
        Entry(action="abort", trigger=reason, model=model, from_version=marker.get("challenger"),
              to_version=marker.get("champion"), traffic=0.0,
              evidence={"reason": f"the canary did not finish: {reason}", "share_at_abort": share,
                        "canary_trigger": marker.get("trigger"), "started_at": marker.get("started_at")})
    )
    path.unlink(missing_ok=True)
    return entry
