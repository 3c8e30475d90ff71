"""The main job, end to end at small size: the loop improves the model after drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# slow (about 50 s on two busy cores): the loop improving the model after drift is the default
# suite's tests/flows/test_loop_stack.py, under `ratchet up`; this keeps the demo's report and plot
pytestmark = pytest.mark.slow


def test_demo_loop_end_to_end(cli, home):
    r = cli("demo", "--inline", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    report = json.loads(Path(out["report_json"]).read_text())
    assert Path(out["report_md"]).exists() and Path(out["plot"]).exists()

    # the first champion is promoted over the floor, the retrained one by the gate
    assert len(report["champion_versions"]) == 2
    assert report["accuracy_old_champion_before_drift"] > 0.75
    assert report["accuracy_old_champion_after_drift"] < 0.7
    assert report["accuracy_new_champion_after_drift"] > report["accuracy_old_champion_after_drift"] + 0.1
    promotions = [e for e in report["ledger"] if e["action"] == "promote"]
    assert [e["to_version"] for e in promotions] == report["champion_versions"]
    assert promotions[1]["evidence"]["p_value"] < 0.05

    # the service answered every request, and switched to the new champion without a restart
    assert report["traffic"]["non_2xx"] == 0
    phases = report["traffic"]["phases"]
    assert set(phases["after_retrain"]["rows_by_version"]) == {report["champion_versions"][-1]}
    assert report["drift"]["detected"] is True

    # status reads the demo's sandbox home
    status = json.loads(cli("--home", str(home / "demo"), "status", "--json").stdout)
    assert status["champion"] == report["champion_versions"][-1]
    assert status["data"] == report["data_main_commit"]
    assert status["drift"]["detected"] is True
    history = json.loads(cli("--home", str(home / "demo"), "history", "--json").stdout)
    assert [e["action"] for e in history["entries"]] == ["promote", "promote"]
