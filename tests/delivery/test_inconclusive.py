"""A step short of evidence (requests, or labels with ``require_feedback``) ends
``insufficient``, which ends the canary ``inconclusive``: a different ending from a breach."""

from __future__ import annotations

from ratchet.delivery.guardrails import CanaryMonitor
from ratchet.delivery.report import markdown_report
from ratchet.delivery.rollout import ENDINGS, watch_step
from tests.delivery.test_canary_stats import CFG, Clock, Script, _read, _version


def _run(reads, cfg):
    clock = Clock()
    monitor = CanaryMonitor(cfg, "1", "2", reads[0])
    return watch_step(Script(reads[1:]), monitor, 0.25, clock=clock, sleep=clock.sleep)


def test_enough_requests_but_no_labels_is_insufficient_only_when_feedback_is_required():
    z = _read(_version(), _version())
    served = _read(_version(300), _version(100))  # plenty of requests, not one label
    assert _run([z, z, served], CFG).decision == "pass"
    strict = CFG.model_copy(update={"require_feedback": True, "min_feedback": 30})
    r = _run([z, z, served], strict)
    assert r.decision == "insufficient" and r.seconds >= strict.max_step_s
    assert r.breaches == [f"not enough evidence in {r.seconds:.0f} s: the challenger got 0 labels, "
                          "fewer than min_feedback=30"]
    labelled = _read(_version(300, feedback=100, correct=90), _version(100, feedback=40, correct=36))
    assert _run([z, z, labelled], strict).decision == "pass"


def test_each_failed_step_has_its_own_ending_and_the_report_says_inconclusive_apart():
    assert ENDINGS == {"breach": "rollback", "insufficient": "inconclusive", "superseded": "superseded"}
    md = markdown_report("canary v3 vs v2: inconclusive", ["not enough evidence"], [], "p.png", "inconclusive")
    assert "**inconclusive**" in md and "the challenger keeps its alias" in md
    assert "**inconclusive**" not in markdown_report("canary v3 vs v2: rollback", ["error rate"], [], "p.png",
                                                     "rollback")
