"""``DriftResult``: the monitor's finding, typed, and what it writes reads back the same."""

from __future__ import annotations

import json

from ratchet.monitoring.drift import drift_history
from ratchet.monitoring.drift_result import DriftResult


def test_what_a_run_sets_is_what_it_writes_and_reads_back(tmp_path):
    result = DriftResult(checked_at=5.0, champion="2")
    result.detected, result.kind, result.reason = True, "estimated", "estimate fell"
    result.estimated = {"accuracy": 0.7, "accuracy_sd": 0.01, "rows": 400}
    result.ks_extra = 0.3  # a figure of the drift report the model does not name travels along
    # only what was set is written: no column of nulls in drift.json
    assert result.to_dict() == {"checked_at": 5.0, "champion": "2", "detected": True, "kind": "estimated",
                                "reason": "estimate fell", "estimated": {"accuracy": 0.7, "accuracy_sd": 0.01,
                                                                         "rows": 400}, "ks_extra": 0.3}
    (tmp_path / "drift.json").write_text(json.dumps(result.to_dict()))
    back = DriftResult.read(tmp_path / "drift.json")
    assert back == result and back.summary()["kind"] == "estimated"
    assert DriftResult.read(tmp_path / "missing.json") is None
    assert result.announcement()["reason"] == "estimate fell"

    history = tmp_path / "reports" / "drift" / "history.jsonl"
    history.parent.mkdir(parents=True)
    history.write_text("\n".join(json.dumps(r.to_dict()) for r in (result, DriftResult(checked_at=6.0))) + "\n")
    assert [h.checked_at for h in drift_history(tmp_path)] == [5.0, 6.0]
    assert [h.detected for h in drift_history(tmp_path)] == [True, False]
