"""The monitor's live quality for a regression champion: live MAE from the service's /stats
against the champion's held-out MAE (``drift.live_error``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ratchet.core.config import DriftConfig
from ratchet.monitoring.concept import spent_alpha
from ratchet.monitoring.drift import MIN_FEEDBACK, live_error
from ratchet.serving.metrics import ServingMetrics

CFG = DriftConfig(concept_alpha=0.01, concept_min_drop=0.0)
SD = 50.0  # errors N(0, SD): MAE = SD sqrt(2/pi), RMSE = SD
HELD_OUT = {"test_mae": SD * math.sqrt(2 / math.pi), "test_rmse": SD, "test_rows": 90}


def _live(sd: float, n: int, seed: int) -> dict:
    """The champion's entry of a real service's /stats after ``n`` regression labels."""
    m = ServingMetrics()
    m.observe_values("3", "champion", n)
    m.observe_feedback_errors("3", np.random.default_rng(seed).normal(0.0, sd, n).tolist())
    return m.stats()["versions"]["3"]


def test_live_errors_clearly_above_the_held_out_mae_are_detected():
    found = live_error(_live(2.0 * SD, 300, seed=1), HELD_OUT, 1, CFG)
    assert found["detected"] and found["p_value"] < found["alpha"] == pytest.approx(spent_alpha(0.01, 1))
    assert found["live_mae"] == pytest.approx(2 * HELD_OUT["test_mae"], rel=0.15)
    assert found["held_out_mae"] == HELD_OUT["test_mae"] and found["feedback"] == 300


def test_live_errors_like_the_held_out_ones_are_not():
    alarms = [live_error(_live(SD, 300, seed=s), HELD_OUT, 1, CFG)["detected"] for s in range(40)]
    assert sum(alarms) <= 2
    better = live_error(_live(0.5 * SD, 300, seed=2), HELD_OUT, 1, CFG)
    assert not better["detected"] and better["p_value"] > 0.5


def test_the_margin_and_alpha_spending_hold_back_a_small_rise():
    # the held-out rows are a sample too: with 90 of them a 15 % rise is within their noise
    small, big_test = _live(1.15 * SD, 2000, seed=3), {**HELD_OUT, "test_rows": 2000}
    assert not live_error(small, HELD_OUT, 1, CFG)["detected"]
    assert live_error(small, big_test, 1, CFG)["detected"]
    assert not live_error(small, big_test, 1, CFG.model_copy(update={"concept_min_drop": 0.2}))["detected"]
    later = live_error(small, big_test, 50, CFG)  # the 50th look at this champion is held to far less
    assert later["alpha"] == pytest.approx(spent_alpha(0.01, 50)) and later["alpha"] < 1e-5


def test_no_verdict_without_enough_labels_or_a_held_out_mae():
    assert live_error(_live(3 * SD, MIN_FEEDBACK - 1, seed=4), HELD_OUT, 1, CFG) is None
    assert live_error(_live(3 * SD, 300, seed=4), {"test_rmse": SD, "test_rows": 90}, 1, CFG) is None
    classifier = {"feedback": 300, "correct": 200, "live_accuracy": 0.66}
    assert live_error(classifier, HELD_OUT, 1, CFG) is None
