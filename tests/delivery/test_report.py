"""The canary's report: table rows per step, the markdown summary, the result's dict."""

from __future__ import annotations

from ratchet.delivery.report import markdown_report, step_rows
from ratchet.delivery.results import CanaryResult, StepResult


def _step(share: float, decision: str, breaches: list[str], rate_h: float, p99_h: float) -> StepResult:
    evidence = {
        "step": {"challenger_requests": 120, "champion_requests": 380, "challenger_error_rate": rate_h,
                 "champion_error_rate": 0.0, "challenger_p99_ms": p99_h, "champion_p99_ms": 4.123},
        "canary": {"error_sprt_llr": 0.5, "prediction_js": 0.012345, "challenger_accuracy": 0.91234,
                   "champion_accuracy": None, "accuracy_p_worse": 1.0},
    }
    return StepResult(share, decision, 12.345, breaches, evidence)


def test_step_rows_round_and_join_breaches():
    rows = step_rows([_step(0.05, "pass", [], 0.012345, 5.6789),
                      _step(0.25, "breach", ["error rate", "p99 latency"], 0.2, 9.0)])
    assert rows[0]["seconds"] == 12.3 and rows[0]["challenger_error_rate"] == 0.0123
    assert rows[0]["challenger_p99_ms"] == 5.68 and rows[0]["champion_accuracy"] is None
    assert rows[0]["breaches"] == "" and rows[1]["breaches"] == "error rate; p99 latency"


def test_markdown_report_has_the_reason_a_row_per_step_and_the_plot():
    rows = step_rows([_step(0.05, "pass", [], 0.0, 5.0), _step(0.25, "breach", ["error rate"], 0.2, 9.0)])
    md = markdown_report("canary v3 vs v2: rollback", ["error rate", "p99"], rows, "/r/canary/x.png")
    lines = md.splitlines()
    assert lines[0] == "# canary v3 vs v2: rollback"
    assert lines[2] == "reason: error rate; p99"
    assert lines[4].startswith("| share | decision |") and lines[5] == "|---|---|---|---|---|---|---|"
    assert lines[6] == "| 5% | pass | 120 | 0.0 / 0.0 | 5.0 / 4.12 | 0.0123 | 0.9123 / None |"
    assert lines[7].startswith("| 25% | breach | 120 | 0.2 / 0.0 | 9.0 / 4.12 |")
    assert lines[-1] == "plot: `/r/canary/x.png`" and len(lines) == 10
    assert "reason: every step passed" in markdown_report("t", None, [], "p.png")


def test_canary_result_dict_has_the_keys_the_flow_returned():
    rows = step_rows([_step(1.0, "pass", [], 0.0, 5.0)])
    promoted = CanaryResult("promote", "3", "3", previous="2", ledger_id=7).with_report(rows, "p.png")
    assert promoted.to_dict() == {"action": "promote", "champion": "3", "previous": "2", "challenger": "3",
                                  "ledger_id": 7, "steps": rows, "plot": "p.png"}
    rolled = CanaryResult("rollback", "2", "3", reason=["error rate"], ledger_id=8).with_report([], "p.png")
    assert set(rolled.to_dict()) == {"action", "champion", "challenger", "reason", "ledger_id", "steps", "plot"}
    noop = CanaryResult("noop", "3", "3").with_report([], "p.png")
    assert set(noop.to_dict()) == {"action", "champion", "challenger", "steps", "plot"}
