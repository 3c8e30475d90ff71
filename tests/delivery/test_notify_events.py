"""What a release and a canary announce (the notification automations post these)."""

from __future__ import annotations

from ratchet.delivery.approval import ApprovalRequest, evidence_markdown
from ratchet.delivery.notify import approval_event, canary_event, release_event
from ratchet.promotion.decision import GateEvidence


def test_each_ending_has_its_event_with_model_versions_reason_and_link():
    promoted = release_event("m", {"action": "promote", "champion": "3", "previous": "2",
                                   "challenger": "3"}, ["p 0.001 <= 0.05"], "http://ui/r")
    assert promoted == ("ratchet.model.promoted", {"model": "m", "action": "promote", "champion": "3",
                                                   "challenger": "3", "reason": "p 0.001 <= 0.05",
                                                   "flow_run_url": "http://ui/r"})
    kept = release_event("m", {"action": "rejected", "champion": "2", "challenger": "3"}, [], None)
    assert kept[0] == "ratchet.model.kept" and kept[1]["reason"] == "approval: rejected"
    assert kept[1]["challenger"] == "3"
    assert release_event("m", {"action": "rollback", "champion": "2"}, [], None) is None  # the canary said it
    assert release_event("m", {"action": "noop", "champion": "2"}, [], None) is None
    rolled = canary_event("m", {"action": "rollback", "champion": "2", "challenger": "3",
                                "reason": ["error rate", "p99"]}, "u")
    assert rolled[0] == "ratchet.model.rolled_back" and rolled[1]["reason"] == "error rate; p99"
    quiet = canary_event("m", {"action": "inconclusive", "champion": "2", "challenger": "3",
                               "reason": ["not enough evidence"]}, "u")
    assert quiet[0] == "ratchet.model.canary_inconclusive"
    assert canary_event("m", {"action": "promote"}, None) is None
    req = ApprovalRequest("m", "3", "2", 0.0, "gate passed", "t", "id", "http://ui/x")
    assert approval_event("m", req.to_dict()) == ("ratchet.model.approval_requested", {
        "model": "m", "action": "approval_requested", "champion": "2", "challenger": "3",
        "reason": "gate passed", "flow_run_url": "http://ui/x"})


def test_the_evidence_to_approve_on_shows_the_gate_slices_and_lineage():
    req = ApprovalRequest("m", "3", "2", 0.0, "gate passed", "t", "id", "http://ui/x")
    evidence = GateEvidence(metric="accuracy", champion=0.81, challenger=0.86, difference=0.05,
                            improvement_ci=[0.02, 0.08], p_value=0.0004, data_window="2 batch(es)",
                            slices={"region": {"worst": "eu"}})
    md = evidence_markdown(req, "promote", ["accuracy better"], evidence, {"data_commit": "abc", "params": {}})
    assert md.splitlines()[0] == "# approval requested: m v3 (champion v2)"
    for text in ("| p_value | 0.0004 |", "| improvement_ci | [0.02, 0.08] |", "| data_window | 2 batch(es) |",
                 "## slices", "## lineage", "| data_commit | abc |", "ratchet approve 3", "(http://ui/x)"):
        assert text in md, text
    assert "params" not in md
