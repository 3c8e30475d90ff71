"""The monitor's estimate of the champion's accuracy without labels: a real service's /stats sums
of calibrated confidences (``ServingMetrics.observe_estimated``), windowed between readings and
judged against the champion's held-out accuracy (``drift.estimated_check``)."""

from __future__ import annotations

import numpy as np

from ratchet.monitoring.concept import Baseline
from ratchet.monitoring.drift import MIN_ESTIMATE_ROWS, _estimated_quality, estimated_check
from ratchet.monitoring.drift_result import DriftResult
from ratchet.serving.metrics import ServingMetrics

BASE = Baseline(version="3", rows=2000, error=0.13)  # held-out accuracy 0.87


def _observe(m: ServingMetrics, mean: float, n: int, seed: int) -> dict:
    """``n`` rows whose calibrated confidences average ``mean``; the champion's /stats entry after them."""
    c = np.clip(np.random.default_rng(seed).normal(mean, 0.08, n), 0.5, 1.0)
    m.observe_estimated("3", c)
    return m.stats()["versions"]["3"]


def _reading(stats: dict) -> DriftResult:
    return DriftResult(checked_at=0.0, champion="3", estimated_sums={
        k: stats[k] for k in ("estimated_rows", "estimated_correct", "estimated_variance")})


def test_confidences_like_the_held_out_accuracy_give_no_alarm():
    alarms = 0
    for seed in range(30):
        found = estimated_check(BASE, _observe(ServingMetrics(), 0.87, 500, seed), [])
        assert found["rows"] == 500 and abs(found["accuracy"] - 0.87) < 0.02
        alarms += found["detected"]
    assert alarms <= 1


def test_a_drop_is_seen_in_the_window_since_the_last_reading_before_any_label():
    m = ServingMetrics()
    healthy = _observe(m, 0.87, 2000, seed=1)
    readings = [_reading(healthy)]
    assert not estimated_check(BASE, healthy, [])["detected"]
    dropped = _observe(m, 0.78, 400, seed=2)  # the newest 400 rows only: the window since the reading
    found = estimated_check(BASE, dropped, readings)
    assert found["rows"] == 400 and found["detected"] and abs(found["accuracy"] - 0.78) < 0.02
    # over everything since start the same drop is diluted below the threshold
    assert not estimated_check(BASE, dropped, [])["detected"]
    assert dropped["feedback"] == 0  # no label was needed

    result = DriftResult(checked_at=1.0, champion="3", detected=False, kind="data")
    _estimated_quality(result, BASE, dropped, readings)
    assert result.detected and result.kind == "estimated" and "no label needed" in result.reason
    concept = DriftResult(checked_at=1.0, champion="3", detected=True, kind="concept", reason="labels")
    _estimated_quality(concept, BASE, dropped, readings)
    assert concept.kind == "concept" and concept.reason == "labels"  # labels, when there are, say more


def test_too_few_rows_or_a_restarted_service():
    m = ServingMetrics()
    few = _observe(m, 0.6, MIN_ESTIMATE_ROWS - 1, seed=3)
    assert estimated_check(BASE, few, []) is None
    before_restart = _reading(_observe(ServingMetrics(), 0.87, 5000, seed=4))
    fresh = _observe(ServingMetrics(), 0.70, 300, seed=5)  # counters smaller than the reading: from zero
    found = estimated_check(BASE, fresh, [before_restart])
    assert found["rows"] == 300 and found["detected"]
