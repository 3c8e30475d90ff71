"""The canary's live-quality guardrail on a regression model: the mSPRT on log(challenger MAE /
champion MAE) flags a challenger whose errors are clearly larger, passes an equal one, and keeps
its false alarms under alpha however often it looks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ratchet.core.config import CanaryConfig
from ratchet.delivery.guardrails import CanaryMonitor
from ratchet.delivery.report import markdown_report, step_rows
from ratchet.delivery.results import StepResult
from ratchet.delivery.rollout import watch_step
from ratchet.delivery.sequential import MAEMSPRT
from ratchet.delivery.stats import window
from tests.delivery.test_canary_stats import BOUNDS, Clock

CFG = CanaryConfig(step_s=10, min_requests=20, max_step_s=60, poll_s=5, min_latency_samples=20,
                   min_prediction_rows=50, min_feedback=50)


class Service:
    """/stats of a service serving a regression champion ("1") and challenger ("2"): each read adds
    ``per_read`` labelled rows per version, with absolute errors |N(0, sd)| (MAE = sd sqrt(2/pi))."""

    def __init__(self, sd_champion: float, sd_challenger: float, per_read: int = 40, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.sd = {"1": sd_champion, "2": sd_challenger}
        self.per_read = per_read
        self.totals = {v: {"n": 0, "abs": 0.0, "sq": 0.0} for v in self.sd}

    def read(self, add: bool = True) -> dict:
        versions = {}
        for v, sd in self.sd.items():
            t = self.totals[v]
            if add:
                e = self.rng.normal(0.0, sd, self.per_read)
                t["n"] += self.per_read
                t["abs"] += float(np.abs(e).sum())
                t["sq"] += float((e * e).sum())
            hist = [0] * (len(BOUNDS) + 1)
            hist[int(np.searchsorted(BOUNDS, 2.0))] = t["n"]
            versions[v] = {
                "routed": t["n"], "requests": t["n"], "fallbacks": 0, "server_errors": 0,
                "shadow_requests": 0, "shadow_errors": 0, "rows": t["n"], "predicted": {"(number)": t["n"]},
                "feedback": t["n"], "correct": 0, "latency_hist_ms": hist, "task": "regression",
                "live_accuracy": None, "abs_error_sum": t["abs"], "squared_error_sum": t["sq"],
                "live_mae": t["abs"] / t["n"] if t["n"] else None,
            }
        return {"champion": "1", "challenger": "2", "latency_bounds_ms": BOUNDS, "versions": versions}

    def stats(self) -> dict:
        return self.read()


def _step(service: Service, cfg: CanaryConfig = CFG) -> StepResult:
    clock = Clock()
    monitor = CanaryMonitor(cfg, "1", "2", service.read(add=False))
    return watch_step(service, monitor, 0.5, clock=clock, sleep=clock.sleep)


def test_a_challenger_with_clearly_larger_errors_is_rolled_back():
    r = _step(Service(sd_champion=10.0, sd_challenger=15.0, seed=1))
    assert r.decision == "breach"
    assert any(b.startswith("live error: challenger MAE") for b in r.breaches), r.breaches
    cn = r.evidence["canary"]
    assert cn["challenger_mae"] > cn["champion_mae"] and cn["mae_p_worse"] <= CFG.accuracy_alpha
    assert cn["challenger_accuracy"] is None and cn["champion_accuracy"] is None  # no accuracy for numbers
    assert r.seconds < CFG.step_s + CFG.poll_s  # a sequential test: it speaks at the look it is sure


def test_an_equal_challenger_passes_and_a_better_one_is_shown_better():
    same = _step(Service(sd_champion=10.0, sd_challenger=10.0, seed=2))
    assert same.decision == "pass", same.breaches
    assert same.evidence["canary"]["mae_p_worse"] > CFG.accuracy_alpha
    better = _step(Service(sd_champion=10.0, sd_challenger=6.0, seed=3))
    assert better.decision == "pass" and better.evidence["canary"]["mae_p_better"] <= CFG.accuracy_alpha


def test_the_margin_tolerates_a_small_rise():
    # 10 % more error: flagged with no margin once there are enough labels, tolerated with a 20 % margin
    strict = CFG.model_copy(update={"step_s": 600, "max_step_s": 900})
    assert _step(Service(10.0, 11.0, per_read=400, seed=4), strict).decision == "breach"
    loose = strict.model_copy(update={"mae_margin": 0.2})
    assert _step(Service(10.0, 11.0, per_read=400, seed=4), loose).decision == "pass"


def test_mae_msprt_false_alarms_stay_under_alpha_with_many_looks():
    rng = np.random.default_rng(5)
    alarms, sims, looks = 0, 400, 30
    for _ in range(sims):
        t = MAEMSPRT(tau=0.1, margin=0.0)
        s = np.zeros(6)
        for _ in range(looks):
            e_h, e_c = rng.exponential(3.0, 10), rng.exponential(3.0, 30)  # skewed errors, unequal shares
            s += [len(e_h), np.abs(e_h).sum(), (e_h**2).sum(), len(e_c), np.abs(e_c).sum(), (e_c**2).sum()]
            t.update(int(s[0]), s[1], s[2], int(s[3]), s[4], s[5])
            if t.p_worse <= 0.05:
                alarms += 1
                break
    assert alarms / sims <= 0.06


def test_the_log_ratio_and_its_variance():
    e_h, e_c = np.array([1.0, 2.0, 3.0, 6.0]), np.array([1.0, 1.0, 2.0])
    theta, var = MAEMSPRT.log_ratio(4, e_h.sum(), (e_h**2).sum(), 3, e_c.sum(), (e_c**2).sum())
    assert theta == pytest.approx(math.log(e_h.mean() / e_c.mean()))
    want = e_h.var(ddof=1) / (4 * e_h.mean() ** 2) + e_c.var(ddof=1) / (3 * e_c.mean() ** 2)
    assert var == pytest.approx(want)
    assert MAEMSPRT.log_ratio(1, 1.0, 1.0, 5, 5.0, 5.0) is None  # too few rows
    assert MAEMSPRT.log_ratio(5, 0.0, 0.0, 5, 5.0, 5.0) is None  # a perfect version: no ratio


def test_windows_and_report_carry_the_errors():
    svc = Service(10.0, 15.0, seed=6)
    start = svc.read(add=False)
    later = svc.read()
    w = window(later, start, "2")
    assert w.regression and w.feedback == 40 and w.accuracy is None
    assert w.mae == pytest.approx(later["versions"]["2"]["abs_error_sum"] / 40)
    assert w.rmse == pytest.approx(math.sqrt(later["versions"]["2"]["squared_error_sum"] / 40))
    r = _step(Service(10.0, 15.0, seed=1))
    rows = step_rows([r])
    assert rows[0]["challenger_mae"] > rows[0]["champion_mae"]
    md = markdown_report("canary", r.breaches, rows, "x.png")
    assert "| MAE (chall/champ) |" in md and "accuracy (chall/champ)" not in md
    assert f"{rows[0]['challenger_mae']} / {rows[0]['champion_mae']}" in md
