"""The concept-drift test: the champion's error on labelled samples against its held-out error."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ratchet.core.config import DriftConfig
from ratchet.data.profile_drift import drift_report
from ratchet.data.profiling import merge_profiles, profile_frame
from ratchet.monitoring.concept import Baseline, ConceptCheck, Sample, check, spent_alpha
from ratchet.monitoring.drift import feedback_windows, live_concept
from ratchet.monitoring.drift_result import DriftResult

CFG = DriftConfig()
BASE = Baseline("3", rows=1200, error=0.08)


def _run(errors: list[float], rows: int = 600) -> list[ConceptCheck]:
    samples = [Sample(f"b{i}", rows, e) for i, e in enumerate(errors)]
    return [check(samples[:i], s, BASE, CFG) for i, s in enumerate(samples)]


def test_a_step_change_is_detected_on_its_first_batch_and_named_as_the_onset():
    rng = np.random.default_rng(0)
    errors = [rng.binomial(600, 0.08) / 600 for _ in range(6)] + [rng.binomial(600, 0.30) / 600 for _ in range(3)]
    verdicts = _run(errors)
    assert not any(v.detected for v in verdicts[:6])
    assert all(v.detected for v in verdicts[6:])
    assert {v.onset for v in verdicts[6:]} == {"b6"}


def test_no_change_gives_no_alarm_over_many_batches():
    rng = np.random.default_rng(1)
    alarms = 0
    for _ in range(50):  # 50 champions x 20 clean batches each
        alarms += any(v.detected for v in _run([rng.binomial(600, 0.08) / 600 for _ in range(20)]))
    assert alarms <= 2  # concept_alpha 0.01 bounds the chance of any alarm per champion


def test_alpha_spending_sums_to_alpha():
    assert abs(sum(spent_alpha(0.01, i) for i in range(1, 100_000)) - 0.01) < 1e-6


def test_a_verdict_survives_commit_metadata():
    v = _run([0.08, 0.4])[-1]
    assert v.detected
    assert ConceptCheck.from_metadata(v.metadata()) == v


def test_regression_mse_rise_is_detected():
    base = Baseline("1", 1000, 1.0, regression=True)
    same = check([], Sample("a", 500, 1.02, spread=1.4), base, CFG)
    worse = check([], Sample("b", 500, 2.0, spread=2.8), base, CFG)
    assert not same.detected and worse.detected


def test_live_feedback_windows_name_where_accuracy_fell():
    readings, fb, ok = [], 0, 0
    for t in range(30):  # 30 monitor readings, 40 labels each; accuracy falls at reading 20
        fb, ok = fb + 40, ok + (37 if t < 20 else 24)
        readings.append(DriftResult(checked_at=1000.0 + 60 * t, feedback_total=fb, correct_total=ok))
    windows = feedback_windows(readings)
    assert len(windows) == 30 and windows[0].rows == 40
    verdict = live_concept(readings, BASE, CFG)
    assert verdict.detected and verdict.onset.startswith(f"{1000.0 + 60 * 19:.3f}..")


def test_unchanged_live_accuracy_gives_no_alarm_over_30_windows():
    rng = np.random.default_rng(2)
    readings, fb, ok = [], 0, 0
    for t in range(30):
        fb, ok = fb + 100, ok + int(rng.binomial(100, 0.92))
        readings.append(DriftResult(checked_at=float(t), feedback_total=fb, correct_total=ok))
    assert not live_concept(readings, BASE, CFG).detected


def test_a_service_restart_starts_the_counters_again():
    readings = [DriftResult(checked_at=0.0, feedback_total=50, correct_total=45),
                DriftResult(checked_at=1.0, feedback_total=40, correct_total=10)]  # restarted: 40 new labels
    w = feedback_windows(readings)
    assert [s.rows for s in w] == [50, 40] and w[1].error == 0.75


def test_replayed_unchanged_traffic_is_no_feature_drift():
    """The issue's false alarm: traffic replayed from one batch (rows repeat) against every training
    batch's profile. KS counts the repeats as evidence; without an effect floor 3-4 of 9 features
    'drift' on every check (min_effect=0 below), with it none does."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame(rng.normal(size=(10_500, 5)), columns=list("abcde"))
    ref = merge_profiles([profile_frame(df.iloc[i * 1500:(i + 1) * 1500]) for i in range(6)])
    batch = df.iloc[9000:]
    live = merge_profiles([profile_frame(batch.sample(400, replace=True, random_state=w)) for w in range(30)])
    assert not drift_report(ref, live, CFG).drifted_features
    loose = drift_report(ref, live, DriftConfig(min_effect=0.0))
    shifted = profile_frame(batch.assign(a=batch["a"] + 0.5))
    assert drift_report(ref, shifted, CFG).features["a"]["drifted"]  # a real shift still drifts
    assert loose.features["a"]["effect"] is not None
