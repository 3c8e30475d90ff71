"""The canary's statistics: the sequential tests keep their error rates under repeated looks,
catch real regressions, and the guardrails end a step as specified."""

from __future__ import annotations

import numpy as np
import pytest

from ratchet.core.config import CanaryConfig
from ratchet.delivery.guardrails import CanaryMonitor
from ratchet.delivery.rollout import watch_step
from ratchet.delivery.sequential import AccuracyMSPRT, ErrorSPRT
from ratchet.delivery.stats import js_distance, quantile_ms
from ratchet.serving.metrics import STATS_LATENCY_BOUNDS_MS

BOUNDS = list(STATS_LATENCY_BOUNDS_MS)


def _reject_rate(rate_h: float, rate_c: float, sims: int, looks: int, share: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    rejected = 0
    for _ in range(sims):
        t = ErrorSPRT(ratio=2.0, alpha=0.05, beta=0.2)
        for _ in range(looks):
            n_h = rng.poisson(200 * share) + 1
            n_c = rng.poisson(200 * (1 - share)) + 1
            t.update(rng.binomial(n_h, rate_h), n_h, rng.binomial(n_c, rate_c), n_c)
            if t.rejected:
                rejected += 1
                break
    return rejected / sims


def test_binomial_llr_is_scipys():
    from scipy.stats import binom

    for k, n, p1, p0 in ((0, 10, 0.2, 0.1), (3, 7, 0.136, 0.05), (40, 1000, 0.02, 0.01)):
        want = binom.logpmf(k, n, p1) - binom.logpmf(k, n, p0)
        assert ErrorSPRT.binomial_llr(k, n, p1, p0) == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_error_sprt_false_alarms_stay_under_alpha_with_many_looks():
    assert _reject_rate(0.02, 0.02, sims=1000, looks=40, share=0.25, seed=1) <= 0.06


def test_a_fixed_sample_test_checked_as_often_would_not():
    """Why the canary needs a sequential test: a one-sided z-test at 0.05 looked at 40 times."""
    from statsmodels.stats.proportion import proportions_ztest

    rng = np.random.default_rng(1)
    alarms = 0
    for _ in range(300):
        e_h = n_h = e_c = n_c = 0
        for _ in range(40):
            a, b = rng.poisson(50) + 1, rng.poisson(150) + 1
            e_h, e_c = e_h + rng.binomial(a, 0.02), e_c + rng.binomial(b, 0.02)
            n_h, n_c = n_h + a, n_c + b
            if e_h + e_c and proportions_ztest([e_h, e_c], [n_h, n_c], alternative="larger")[1] < 0.05:
                alarms += 1
                break
    assert alarms / 300 > 0.15


def test_error_sprt_catches_a_challenger_that_errs_more():
    assert _reject_rate(0.08, 0.02, sims=100, looks=40, share=0.25, seed=2) >= 0.9


def test_error_sprt_every_canary_request_failing_is_caught_at_5_percent():
    t = ErrorSPRT(ratio=2.0, alpha=0.05, beta=0.2)
    looks = 0
    while not t.rejected:  # 5 of 100 requests go to the challenger and all of them fail
        t.update(5, 5, 0, 95)
        looks += 1
    assert looks <= 2
    same = ErrorSPRT(ratio=2.0, alpha=0.05, beta=0.2)
    for _ in range(50):
        same.update(0, 50, 1, 50)  # the champion errs, the challenger does not
    assert not same.rejected and same.accepted


def test_error_sprt_at_full_share_tests_against_the_champions_earlier_rate():
    t = ErrorSPRT(ratio=2.0, alpha=0.05, beta=0.2)
    t.update(0, 100, 2, 100)  # champion: ~1 % before the 100 % step
    for _ in range(3):
        t.update(1, 100, 0, 0)  # challenger alone, about the same rate
    assert not t.rejected
    for _ in range(3):
        t.update(10, 100, 0, 0)  # challenger alone at 10 %
    assert t.rejected


def test_accuracy_msprt_is_always_valid_and_has_power():
    rng = np.random.default_rng(3)
    false_alarms = 0
    sims, looks = 200, 25
    for _ in range(sims):
        t = AccuracyMSPRT(tau=0.05, margin=0.0)
        k_h = f_h = k_c = f_c = 0
        for _ in range(looks):
            f_h += 40
            f_c += 40
            k_h += rng.binomial(40, 0.8)
            k_c += rng.binomial(40, 0.8)
            t.update(k_h, f_h, k_c, f_c)
        false_alarms += t.p_worse <= 0.05
    assert false_alarms / sims <= 0.06
    t = AccuracyMSPRT(tau=0.05, margin=0.0)
    t.update(600, 1000, 800, 1000)
    assert t.p_worse < 1e-6 and t.p_better == 1.0 and t.diff == pytest.approx(-0.2)


def test_quantiles_and_distances():
    hist = [0] * (len(BOUNDS) + 1)
    hist[10] = 98  # <= BOUNDS[10]
    hist[30] = 2
    assert BOUNDS[9] <= quantile_ms(hist, BOUNDS, 0.5) <= BOUNDS[10]
    assert BOUNDS[29] <= quantile_ms(hist, BOUNDS, 0.99) <= BOUNDS[30]
    assert quantile_ms([0] * len(hist), BOUNDS, 0.99) is None
    assert js_distance({"a": 5, "b": 5}, {"a": 50, "b": 50}) == pytest.approx(0.0)
    assert js_distance({"a": 5}, {"b": 7}) == pytest.approx(1.0)


# ---------------------------------------------------------------- the step loop
def _version(routed=0, failures=0, latency_ms=2.0, predicted=None, feedback=0, correct=0):
    hist = [0] * (len(BOUNDS) + 1)
    hist[int(np.searchsorted(BOUNDS, latency_ms))] = routed
    return {
        "routed": routed, "requests": routed, "fallbacks": failures, "server_errors": 0,
        "shadow_requests": 0, "shadow_errors": 0, "predicted": predicted or {"0": routed},
        "feedback": feedback, "correct": correct, "latency_hist_ms": hist,
    }


class Script:
    """A service whose /stats answers come from a list (the last one repeats)."""

    def __init__(self, reads):
        self.reads = list(reads)

    def stats(self):
        return self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]


def _read(champ: dict, chall: dict, served=("1", "2")) -> dict:
    return {"champion": served[0], "challenger": served[1], "latency_bounds_ms": BOUNDS,
            "versions": {"1": champ, "2": chall}}


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


CFG = CanaryConfig(step_s=10, min_requests=20, max_step_s=60, poll_s=5, min_latency_samples=20,
                   p99_slack_ms=5, max_p99_ratio=1.5, min_prediction_rows=50, max_prediction_js=0.3)


def _run(reads, cfg=CFG):
    clock = Clock()
    monitor = CanaryMonitor(cfg, "1", "2", reads[0])
    return watch_step(Script(reads[1:]), monitor, 0.25, clock=clock, sleep=clock.sleep)


def test_step_passes_after_window_and_min_requests():
    z = _read(_version(), _version())
    r = _run([z, z, _read(_version(100), _version(10)), _read(_version(300), _version(30))])
    assert r.decision == "pass" and r.seconds >= CFG.step_s
    assert r.evidence["step"]["challenger_requests"] == 30


def test_step_breaches_on_latency_drift_and_moved_alias():
    z = _read(_version(), _version())
    slow = _run([z, z, _read(_version(300, latency_ms=3), _version(40, latency_ms=40))])
    assert slow.decision == "breach" and "p99 latency" in slow.breaches[0]
    assert slow.seconds >= CFG.step_s  # a magnitude: judged on the whole window, not at the first look
    capped = _run([z, z, _read(_version(300), _version(40, latency_ms=40))],
                  CFG.model_copy(update={"max_p99_ms": 30.0}))
    assert capped.decision == "breach" and "cap" in capped.breaches[0] and capped.seconds < CFG.step_s
    drift = _run([z, z, _read(_version(300, predicted={"0": 150, "1": 150}), _version(60, predicted={"1": 60}))])
    assert drift.decision == "breach" and "Jensen-Shannon" in drift.breaches[0]
    moved = _run([z, z, _read(_version(300), _version(40), served=("2", None))])
    assert moved.decision == "breach" and "moved an alias" in moved.breaches[0]
    newer = _run([z, z, _read(_version(300), _version(40), served=("1", "3"))])  # a newer challenger registered
    assert newer.decision == "superseded" and newer.evidence["superseded_by"] == "3"


def test_step_without_enough_traffic_is_insufficient():
    z = _read(_version(), _version())
    r = _run([z, z, _read(_version(300), _version(3))])
    assert r.decision == "insufficient" and r.seconds >= CFG.max_step_s
