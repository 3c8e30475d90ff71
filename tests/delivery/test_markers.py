"""A canary's marker: written while it runs; left behind by a dead process, it is aborted
(share 0 in the traffic file, an ``abort`` in the ledger)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from ratchet.delivery.markers import MARKER, abort_interrupted, clear_running, mark_running
from ratchet.promotion.ledger import Ledger
from ratchet.serving.traffic_split import TRAFFIC_FILE, Traffic, read_traffic, write_traffic


def test_marker_then_abort_sets_share_zero_and_records_it(tmp_path):
    state = tmp_path / "serving"
    monitor = SimpleNamespace(champion="1", challenger="2", started_at=123.0)
    path = mark_running(state, monitor, "test")
    assert json.loads(path.read_text()) == {"champion": "1", "challenger": "2", "trigger": "test",
                                            "started_at": 123.0}
    write_traffic(state / TRAFFIC_FILE, Traffic(challenger_share=0.25))
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")

    entry = abort_interrupted(state, ledger, "m", "down")
    assert (entry.action, entry.from_version, entry.to_version) == ("abort", "2", "1")
    assert entry.evidence["share_at_abort"] == 0.25 and entry.evidence["canary_trigger"] == "test"
    assert read_traffic(state / TRAFFIC_FILE).challenger_share == 0.0
    assert not (state / MARKER).exists()
    assert abort_interrupted(state, ledger, "m", "again") is None  # nothing left to abort

    mark_running(state, monitor, "test")
    clear_running(state)
    assert not (state / MARKER).exists()
