"""Calibrated confidence and the estimate of accuracy without labels (ratchet.core.performance),
on draws whose true accuracy is known."""

from __future__ import annotations

import numpy as np

from ratchet.core.performance import (
    Calibration,
    EstimateAccumulator,
    estimate,
    estimated_drop,
    expected_calibration_error,
)


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Confidences in [0.5, 1) whose predictions are right with probability conf**2 (overconfident)."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 1.0, n)
    return conf, rng.random(n) < conf**2


def test_isotonic_calibration_removes_overconfidence_on_fresh_rows():
    cal = Calibration.fit(*overconfident(20_000, seed=1))
    conf, hit = overconfident(20_000, seed=2)
    raw, fixed = expected_calibration_error(conf, hit), expected_calibration_error(cal.apply(conf), hit)
    assert raw > 0.08 and fixed < 0.015, (raw, fixed)
    assert cal.rows == 20_000 and abs(cal.ece_raw - raw) < 0.01
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_estimate_is_within_its_own_sd_of_the_realised_accuracy_and_raw_is_not():
    cal = Calibration.fit(*overconfident(20_000, seed=3))
    conf, hit = overconfident(4000, seed=4)
    proba = np.column_stack([1 - conf, conf])  # predicted class 1 everywhere
    est = estimate(proba, cal, ["no", "yes"])
    realised = hit.mean()
    assert abs(est.accuracy - realised) < 3 * est.accuracy_sd, (est, realised)
    naive = estimate(proba, None, ["no", "yes"])
    assert naive.method.endswith("(uncalibrated confidence)")
    assert naive.accuracy - realised > 5 * naive.accuracy_sd  # the raw confidence overstates it
    # every row predicted positive: TP = right rows, FP = wrong ones, no FN
    assert abs(est.f1 - 2 * realised / (2 * realised + (1 - realised))) < 0.03


def test_chunks_add_up_to_the_whole_and_a_drop_is_judged_by_the_estimates_sd():
    rng = np.random.default_rng(5)
    c = rng.uniform(0.6, 0.99, 1000)
    pred = rng.integers(0, 2, 1000)
    whole = EstimateAccumulator(positive=1)
    whole.add(c, pred)
    parts = EstimateAccumulator(positive=1)
    for i in range(0, 1000, 300):
        parts.add(c[i:i + 300], pred[i:i + 300])
    a, b = whole.result(), parts.result()
    assert a.rows == b.rows == 1000
    assert np.isclose(a.accuracy, b.accuracy) and np.isclose(a.f1, b.f1) and np.isclose(a.accuracy_sd, b.accuracy_sd)
    assert EstimateAccumulator().result() is None
    assert not estimated_drop(a.accuracy + 2 * a.accuracy_sd, a)
    assert estimated_drop(a.accuracy + 4 * a.accuracy_sd, a)


def test_select_keeps_a_map_only_where_it_helps_out_of_sample():
    rng = np.random.default_rng(6)
    conf = rng.uniform(0.5, 1.0, 6000)
    calibrated = Calibration.select([(conf[:3000], rng.random(3000) < conf[:3000]),
                                     (conf[3000:], rng.random(3000) < conf[3000:])])
    assert calibrated.method != "isotonic"  # its steps would only add noise here
    assert np.abs(calibrated.apply(conf) - conf).max() < 0.03  # already calibrated: (nearly) left as it is
    over = Calibration.select([overconfident(3000, seed=7), overconfident(3000, seed=8)])
    assert over.method in ("platt", "isotonic") and over.ece < 0.03 < 0.1 < over.ece_raw
    c, h = overconfident(20_000, seed=9)
    assert expected_calibration_error(over.apply(c), h) < 0.03
    assert Calibration.from_dict(over.to_dict()).method == over.method
