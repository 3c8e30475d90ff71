"""The promotion gate: calibration by simulation, then unit behaviour."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from ratchet.core.config import GateConfig
from ratchet.core.metrics import higher_is_better, metric_value
from ratchet.promotion.gate import GateDecision, decide
from ratchet.promotion.paired_tests import improvement_statistic, mcnemar

METRICS = ["accuracy", "f1", "roc_auc", "log_loss"]
BINARY = ["neg", "pos"]


# --------------------------------------------------------------------- helpers
def proba_from_correct(y: np.ndarray, correct: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(…, n, k) probabilities whose argmax is right exactly where ``correct`` is True.

    Works on any leading shape. A right row puts 0.55-0.99 on the true class; a wrong
    row puts that much on a random wrong class, so confidence carries signal for
    roc_auc and log_loss as well.
    """
    conf = rng.uniform(0.55, 0.99, y.shape)
    wrong = (y + rng.integers(1, k, y.shape)) % k
    top = np.where(correct, y, wrong)
    p = np.repeat(((1 - conf) / (k - 1))[..., None], k, axis=-1)
    np.put_along_axis(p, top[..., None], conf[..., None], axis=-1)
    return p


def pair(n: int, acc_champ: float, acc_chal: float, seed: int, k: int = 2, overlap: float | None = None):
    """Labels plus champion and challenger probabilities at the given accuracies,
    with correlated correctness (both right on ``overlap`` of the rows; by default
    5 points less than the weaker model's accuracy)."""
    rng = np.random.default_rng(seed)
    p11 = min(acc_champ, acc_chal) - 0.05 if overlap is None else overlap
    p10, p01 = acc_champ - p11, acc_chal - p11
    cells = rng.choice(4, size=n, p=[p11, p10, p01, 1 - p11 - p10 - p01])
    y = rng.integers(0, k, n)
    champ = proba_from_correct(y, (cells == 0) | (cells == 1), k, rng)
    chal = proba_from_correct(y, (cells == 0) | (cells == 2), k, rng)
    return y, champ, chal


def cfg(**kw) -> GateConfig:
    return GateConfig(**{"bootstrap_samples": 400, "floor": 0.5, **kw})


def gate_cfg(metric: str, **kw) -> GateConfig:
    floor = 1.0 if metric == "log_loss" else 0.5  # log_loss: the floor is a ceiling
    return cfg(metric=metric, test="bootstrap", floor=floor, **kw)


# --------------------------------------------------------------------- simulation
# 2,000 test rows, champion at 85% accuracy; the two models disagree on ~10% of rows
# (both right on ~80%). Cells: both right, only champion right, only challenger right,
# both wrong.
#
# The one-sided exact McNemar gate's promotion rate for these cells is known exactly
# (``benchmarks.promotion_gate.exact_mcnemar_rate``: the binomial test's rejection probability
# summed over the number of discordant rows): equal 4.3%, +2 points 87.0%, -1 point 0.09%. The
# test checks the exact rate against the level and the bounds, and the gate's simulated rate
# against the exact one within 4 Monte Carlo sd: a wrong gate fails, a seed cannot.
SIM_SEED = 0
N_ROWS, N_TRIALS = 2_000, 500
SCENARIOS = {
    "equal": ((0.80, 0.05, 0.05, 0.10), 0.0, 0.05),  # (cells, min rate, max rate) of the exact rate
    "better_2pt": ((0.81, 0.04, 0.06, 0.09), 0.80, 1.0),
    "worse_1pt": ((0.795, 0.055, 0.045, 0.105), 0.0, 0.005),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_simulated_promotion_rates(scenario):
    from benchmarks.promotion_gate import exact_mcnemar_rate

    cells_p, lo, hi = SCENARIOS[scenario]
    exact = exact_mcnemar_rate(cells_p, N_ROWS, 0.05)
    assert lo <= exact <= hi, f"{scenario}: the exact McNemar gate promotes {exact:.2%}"
    rng = np.random.default_rng(SIM_SEED)
    cells = rng.choice(4, size=(N_TRIALS, N_ROWS), p=cells_p)
    y = rng.integers(0, 2, (N_TRIALS, N_ROWS))
    champ = proba_from_correct(y, (cells == 0) | (cells == 1), 2, rng)
    chal = proba_from_correct(y, (cells == 0) | (cells == 2), 2, rng)
    assert abs((champ.argmax(-1) == y).mean() - 0.85) < 0.005
    c = GateConfig(metric="accuracy", test="mcnemar", alpha=0.05, floor=0.6)
    promoted = [decide(y[t], champ[t], chal[t], BINARY, c).promote for t in range(N_TRIALS)]
    rate = float(np.mean(promoted))
    sd = max(np.sqrt(exact * (1 - exact) / N_TRIALS), 1 / N_TRIALS)
    assert abs(rate - exact) <= 4 * sd, f"{scenario}: promoted in {rate:.1%} of {N_TRIALS} trials, exactly {exact:.2%}"


# --------------------------------------------------------------------- decisions
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("test", ["mcnemar", "bootstrap"])
def test_exact_copy_never_promoted(metric, test):
    y, champ, _ = pair(800, 0.85, 0.85, seed=1)
    c = cfg(metric=metric, test=test, floor=1.0 if metric == "log_loss" else 0.5)
    d = decide(y, champ, champ.copy(), BINARY, c)
    assert d.decision == "keep"
    assert d.evidence.p_value == 1.0
    assert d.evidence.identical_predictions is True
    assert d.evidence.difference == 0.0
    assert any("identical" in r for r in d.reasons)


def test_same_decisions_different_confidence_not_promoted_on_accuracy():
    y, champ, _ = pair(800, 0.85, 0.85, seed=2)
    chal = 0.5 + 0.9 * (champ - 0.5)  # same argmax everywhere, different confidence
    d = decide(y, champ, chal, BINARY, cfg())
    assert d.decision == "keep"
    assert d.evidence.p_value == 1.0
    assert d.evidence.discordant == {"challenger_only_correct": 0, "champion_only_correct": 0, "total": 0}
    assert d.evidence.improvement_ci == [0.0, 0.0]


@pytest.mark.parametrize("metric", METRICS)
def test_clearly_better_promoted(metric):
    y, champ, chal = pair(1000, 0.75, 0.90, seed=3)
    d = decide(y, champ, chal, BINARY, gate_cfg(metric))
    assert d.decision == "promote", d.reasons
    assert d.evidence.improvement > 0
    assert d.evidence.p_value <= 0.05
    assert d.evidence.improvement_ci[0] > 0


def test_clearly_better_promoted_mcnemar():
    y, champ, chal = pair(1000, 0.75, 0.90, seed=3)
    d = decide(y, champ, chal, BINARY, cfg())
    assert d.decision == "promote", d.reasons
    assert d.evidence.test == "mcnemar_exact_one_sided"
    b = d.evidence.discordant["challenger_only_correct"]
    m = d.evidence.discordant["total"]
    assert d.evidence.p_value == pytest.approx(binomtest(b, m, 0.5, alternative="greater").pvalue)


@pytest.mark.parametrize("metric", METRICS)
def test_clearly_worse_kept(metric):
    y, champ, chal = pair(1000, 0.90, 0.75, seed=4)
    d = decide(y, champ, chal, BINARY, gate_cfg(metric))
    assert d.decision == "keep"
    assert d.evidence.improvement < 0
    assert d.evidence.p_value > 0.5
    assert any("not significantly better" in r for r in d.reasons)
    assert d.evidence.checks["significance"] is False


def test_log_loss_direction():
    y, champ, chal = pair(1000, 0.75, 0.90, seed=5)
    d = decide(y, champ, chal, BINARY, gate_cfg("log_loss"))
    assert d.evidence.challenger < d.evidence.champion
    assert d.evidence.difference < 0 < d.evidence.improvement
    lo, hi = d.evidence.difference_ci
    assert lo <= d.evidence.difference <= hi < 0


def test_min_effect_blocks_small_significant_gain():
    y, champ, chal = pair(4000, 0.85, 0.88, seed=6)
    assert decide(y, champ, chal, BINARY, cfg()).decision == "promote"
    d = decide(y, champ, chal, BINARY, cfg(min_effect=0.05))
    assert d.decision == "keep"
    assert d.evidence.checks == {"floor": True, "significance": True, "min_effect": False}
    assert "too small to matter" in d.reasons[0]


def test_mcnemar_requested_for_other_metric_uses_bootstrap():
    y, champ, chal = pair(500, 0.75, 0.90, seed=7)
    d = decide(y, champ, chal, BINARY, cfg(metric="f1", test="mcnemar"))
    assert d.evidence.test == "paired_bootstrap_one_sided"
    assert "McNemar applies to accuracy only" in d.evidence.note


def test_bootstrap_seeded_and_deterministic():
    y, champ, chal = pair(600, 0.84, 0.86, seed=8)
    a = decide(y, champ, chal, BINARY, cfg(test="bootstrap", seed=3)).evidence.to_dict()
    b = decide(y, champ, chal, BINARY, cfg(test="bootstrap", seed=3)).evidence.to_dict()
    c = decide(y, champ, chal, BINARY, cfg(test="bootstrap", seed=4)).evidence.to_dict()
    assert a["p_value"] == b["p_value"] and a["improvement_ci"] == b["improvement_ci"]
    assert (a["p_value"], a["improvement_ci"]) != (c["p_value"], c["improvement_ci"])


def test_multiclass_decide():
    classes = ["a", "b", "c"]
    y, champ, chal = pair(900, 0.75, 0.90, seed=9, k=3)
    for metric in METRICS:
        d = decide(y, champ, chal, classes, gate_cfg(metric))
        assert d.decision == "promote", (metric, d.reasons)
    assert decide(y, champ, chal, classes, cfg()).decision == "promote"


def test_float32_softmax_noise_accepted():
    y, champ, chal = pair(500, 0.8, 0.8, seed=10)
    noisy = (chal * (1 + 1e-6)).astype(np.float32)
    c = cfg(metric="log_loss", test="bootstrap", floor=1.0)
    d, exact = decide(y, champ, noisy, BINARY, c), decide(y, champ, chal, BINARY, c)
    # accepted (rows sum to 1 within float32), and the noise changes neither decision nor evidence
    assert d.decision == exact.decision and d.reasons[0] == exact.reasons[0]
    assert d.evidence.challenger == pytest.approx(exact.evidence.challenger, rel=1e-5)
    assert d.evidence.p_value == pytest.approx(exact.evidence.p_value, abs=0.01)


# --------------------------------------------------------------------- McNemar statistics
def test_mcnemar_interval_agrees_with_exact_test():
    n = 1000
    for b, c in [(60, 40), (58, 40), (70, 45), (30, 30), (5, 0), (1, 0), (0, 4)]:
        y = np.zeros(n, dtype=int)
        champ_ok = np.r_[np.zeros(b, bool), np.ones(c, bool), np.ones(n - b - c, bool)]
        chal_ok = np.r_[np.ones(b, bool), np.zeros(c, bool), np.ones(n - b - c, bool)]
        champ = np.where(champ_ok[:, None], [[0.8, 0.2]], [[0.2, 0.8]])
        chal = np.where(chal_ok[:, None], [[0.8, 0.2]], [[0.2, 0.8]])
        res = mcnemar(y, champ, chal, alpha=0.05)
        lo, hi = res["improvement_ci"]
        assert lo <= (b - c) / n <= hi
        assert (lo > 0) == (res["p_value"] <= 0.05), (b, c, res)


# --------------------------------------------------------------------- first model and floor
def test_floor_blocks_first_model_below_and_passes_one_above():
    y, _, weak = pair(1000, 0.85, 0.55, seed=11)
    _, _, strong = pair(1000, 0.85, 0.90, seed=11)
    c = GateConfig(floor=0.6)
    d = decide(y, None, weak, BINARY, c)
    assert d.decision == "keep"
    assert "below the absolute floor" in d.reasons[0]
    assert d.evidence.champion is None and d.evidence.p_value is None
    d = decide(y, None, strong, BINARY, c)
    assert d.decision == "promote"
    assert d.evidence.checks == {"floor": True}


def test_floor_blocks_challenger_that_beats_a_bad_champion():
    y, champ, chal = pair(2000, 0.40, 0.55, seed=12, overlap=0.3)
    d = decide(y, champ, chal, BINARY, GateConfig(floor=0.6))
    assert d.evidence.checks == {"floor": False, "significance": True, "min_effect": True}
    assert d.decision == "keep"


def test_log_loss_floor_is_a_ceiling():
    y, _, chal = pair(1000, 0.85, 0.90, seed=13)
    ll = metric_value("log_loss", y, chal, BINARY)
    assert decide(y, None, chal, BINARY, GateConfig(metric="log_loss", floor=ll + 0.01)).promote
    d = decide(y, None, chal, BINARY, GateConfig(metric="log_loss", floor=ll - 0.01))
    assert d.decision == "keep" and "ceiling" in d.reasons[0]


# --------------------------------------------------------------------- guardrails
@pytest.fixture(scope="module")
def better():
    return pair(1000, 0.75, 0.90, seed=14)


def test_latency_guardrail(better):
    y, champ, chal = better
    c = cfg()
    ok = decide(y, champ, chal, BINARY, c, challenger_latency_s=0.011, champion_latency_s=0.010,
                max_latency_ratio=1.2)
    assert ok.promote
    assert ok.evidence.guardrails["latency_ratio"] == pytest.approx(1.1)
    slow = decide(y, champ, chal, BINARY, c, challenger_latency_s=0.015, champion_latency_s=0.010,
                  max_latency_ratio=1.2)
    assert slow.decision == "keep" and "too slow" in slow.reasons[0]
    unmeasured = decide(y, champ, chal, BINARY, c, challenger_latency_s=0.015, max_latency_ratio=1.2)
    assert unmeasured.decision == "keep" and unmeasured.evidence.checks["latency"] is False
    # Reported but not enforced without a limit.
    free = decide(y, champ, chal, BINARY, c, challenger_latency_s=0.05, champion_latency_s=0.01)
    assert free.promote and free.evidence.guardrails["latency_ratio"] == pytest.approx(5.0)


def test_size_guardrail(better):
    y, champ, chal = better
    c = cfg()
    assert decide(y, champ, chal, BINARY, c, challenger_size_bytes=1_000, max_size_bytes=2_000).promote
    big = decide(y, champ, chal, BINARY, c, challenger_size_bytes=3_000, max_size_bytes=2_000)
    assert big.decision == "keep" and "too large" in big.reasons[0]
    assert decide(y, champ, chal, BINARY, c, max_size_bytes=2_000).decision == "keep"
    # The size limit applies to a first model too; the latency ratio cannot.
    first = decide(y, None, chal, BINARY, c, challenger_size_bytes=3_000, max_size_bytes=2_000,
                   challenger_latency_s=1.0, max_latency_ratio=1.1)
    assert first.decision == "keep" and first.evidence.checks == {"floor": True, "size": False}


def test_guardrail_limits_read_from_config_when_present(better):
    y, champ, chal = better
    c = SimpleNamespace(**{**cfg().model_dump(), "max_latency_ratio": 1.2, "max_size_bytes": None})
    d = decide(y, champ, chal, BINARY, c, challenger_latency_s=2.0, champion_latency_s=1.0)
    assert d.decision == "keep" and d.evidence.guardrails["max_latency_ratio"] == 1.2


def test_guardrail_bad_values(better):
    y, champ, chal = better
    with pytest.raises(ValueError, match="challenger_latency_s"):
        decide(y, champ, chal, BINARY, cfg(), challenger_latency_s=-1.0)
    with pytest.raises(ValueError, match="max_size_bytes"):
        decide(y, champ, chal, BINARY, cfg(), max_size_bytes=float("nan"))


# --------------------------------------------------------------------- metrics
def test_higher_is_better():
    assert [higher_is_better(m) for m in METRICS] == [True, True, True, False]
    with pytest.raises(ValueError, match="unknown metric 'mse'"):
        higher_is_better("mse")


def test_metric_values_match_sklearn_binary():
    y, _, p = pair(700, 0.8, 0.8, seed=15)
    pred = p.argmax(1)
    assert metric_value("accuracy", y, p, BINARY) == pytest.approx(accuracy_score(y, pred))
    assert metric_value("f1", y, p, BINARY) == pytest.approx(f1_score(y, pred, pos_label=1))
    assert metric_value("roc_auc", y, p, BINARY) == pytest.approx(roc_auc_score(y, p[:, 1]))
    assert metric_value("log_loss", y, p, BINARY) == pytest.approx(log_loss(y, p))


def test_f1_positive_class_is_last():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([[0.1, 0.9]] * 2 + [[0.9, 0.1]] + [[0.9, 0.1]] * 5)  # class 1: 2 of 3 found
    assert metric_value("f1", y, p, ["neg", "pos"]) == pytest.approx(0.8)
    # Flip the encoding: the positive class is still the last one.
    assert metric_value("f1", 1 - y, p[:, ::-1], ["pos", "neg"]) == pytest.approx(
        f1_score(1 - y, 1 - p.argmax(1), pos_label=1)
    )


def test_metric_values_match_sklearn_multiclass():
    y, _, p = pair(900, 0.7, 0.7, seed=16, k=3)
    pred = p.argmax(1)
    cls = ["a", "b", "c"]
    assert metric_value("accuracy", y, p, cls) == pytest.approx(accuracy_score(y, pred))
    assert metric_value("f1", y, p, cls) == pytest.approx(f1_score(y, pred, average="macro"))
    assert metric_value("roc_auc", y, p, cls) == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))
    assert metric_value("log_loss", y, p, cls) == pytest.approx(log_loss(y, p))


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("metric", METRICS)
def test_vectorised_bootstrap_statistic_matches_sklearn(metric, k):
    """The bootstrap's fast per-resample metrics equal sklearn's on the same resamples."""
    y, champ, chal = pair(300, 0.7, 0.75, seed=17, k=k)
    champ = np.round(champ, 2)  # ties in the scores, to exercise roc_auc's tie handling
    champ /= champ.sum(1, keepdims=True)
    idx = np.random.default_rng(0).integers(0, len(y), (6, len(y)))
    got = improvement_statistic(metric, y, champ, chal, k)(idx)
    sign = 1 if higher_is_better(metric) else -1
    cls = list(range(k))
    want = [sign * (metric_value(metric, y[i], chal[i], cls) - metric_value(metric, y[i], champ[i], cls))
            for i in idx]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_accuracy_matches_sklearn_with_ties():
    y = np.array([0, 1, 1, 0])
    p = np.array([[0.5, 0.5], [0.5, 0.5], [0.3, 0.7], [0.6, 0.4]])
    assert metric_value("accuracy", y, p, BINARY) == accuracy_score(y, p.argmax(1))


# --------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda y, a, b: (y[:-1], a, b), r"challenger_proba has shape \(200, 2\), expected \(199, 2\)"),
        (lambda y, a, b: (y, a[:-1], b), r"champion_proba has shape \(199, 2\), expected \(200, 2\)"),
        (lambda y, a, b: (y, a, np.c_[b, b]), r"challenger_proba has shape \(200, 4\)"),
        (lambda y, a, b: (y, a, b[:, 1]), "challenger_proba must be a 2-D"),
        (lambda y, a, b: (y, np.where(np.arange(200)[:, None] == 7, np.nan, a), b), "champion_proba contains NaN"),
        (lambda y, a, b: (y, a, np.where(np.arange(200)[:, None] == 3, np.inf, b)), "challenger_proba contains NaN"),
        (lambda y, a, b: (y[:0], a[:0], b[:0]), "y_true is empty"),
        (lambda y, a, b: (y, a, b * 2), "outside \\[0, 1\\]"),
        (lambda y, a, b: (y, a, b * 0.9), "rows must sum to 1"),
        (lambda y, a, b: (y + 1, a, b), "class index 2, outside 0..1"),
        (lambda y, a, b: (y - 1, a, b), "class index -1"),
        (lambda y, a, b: (y + 0.5, a, b), "non-integer"),
        (lambda y, a, b: (y.astype(str), a, b), "integer class indices"),
        (lambda y, a, b: (y[:, None], a, b), "y_true must be 1-D"),
        (lambda y, a, b: (y, a, [["x", "y"]] * 200), "challenger_proba is not a numeric array"),
    ],
)
def test_bad_input_raises(mutate, match):
    y, champ, chal = pair(200, 0.8, 0.8, seed=18)
    y2, a, b = mutate(y, champ, chal)
    with pytest.raises(ValueError, match=match):
        decide(y2, a, b, BINARY, cfg())


def test_bad_classes_and_metric():
    y, champ, chal = pair(100, 0.8, 0.8, seed=19)
    with pytest.raises(ValueError, match="at least two labels"):
        decide(y, champ, chal, ["only"], cfg())
    with pytest.raises(ValueError, match="unknown metric"):
        metric_value("mse", y, chal, BINARY)
    with pytest.raises(ValueError, match="roc_auc is undefined"):
        metric_value("roc_auc", np.zeros(100, int), chal, BINARY)
    with pytest.raises(ValueError, match=r"proba has shape \(100, 2\), expected \(100, 3\)"):
        metric_value("accuracy", y, chal, ["a", "b", "c"])


# --------------------------------------------------------------------- evidence
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"cfg": GateConfig(test="bootstrap", bootstrap_samples=200)},
        {"cfg": GateConfig(metric="roc_auc", bootstrap_samples=200)},
        {"first": True},
        {"challenger_latency_s": 0.02, "champion_latency_s": 0.01, "max_latency_ratio": 1.5,
         "challenger_size_bytes": np.int64(10), "max_size_bytes": 100},
    ],
)
def test_evidence_is_json_serialisable(kwargs):
    kwargs = dict(kwargs)
    c = kwargs.pop("cfg", GateConfig())
    first = kwargs.pop("first", False)
    y, champ, chal = pair(400, 0.8, 0.85, seed=20)
    d = decide(y, None if first else champ, chal, BINARY, c, **kwargs)
    assert isinstance(d, GateDecision)
    out = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert out["decision"] == d.decision and out["reasons"] == d.reasons and out["reasons"]
    assert out["evidence"]["p_value"] == d.evidence.p_value  # numbers survive the round trip
    ev = out["evidence"]
    for key in ("metric", "champion", "challenger", "difference", "difference_ci", "improvement_ci",
                "p_value", "test", "n", "alpha", "min_effect", "floor", "guardrails", "checks"):
        assert key in ev
    if not first:
        lo, hi = ev["difference_ci"]
        assert lo <= ev["difference"] <= hi
        assert ev["ci_level"] == pytest.approx(0.9)
    if c.test == "mcnemar" and c.metric == "accuracy" and not first:
        assert set(ev["discordant"]) == {"challenger_only_correct", "champion_only_correct", "total"}


# --------------------------------------------------------------------- out-of-time rows
def _rows(y: np.ndarray, champ_right: np.ndarray, chal_right: np.ndarray, seed: int = 0):
    rng = np.random.default_rng(seed)
    return y, proba_from_correct(y, champ_right, 2, rng), proba_from_correct(y, chal_right, 2, rng)


def test_out_of_time_rows_keep_the_level_for_an_equal_recipe():
    """Equal models everywhere (own rows and the predecessors' out-of-time rows): the pooled exact
    McNemar test promotes at most alpha of the time (4 Monte Carlo sd of slack), a seed cannot fail it."""
    trials, promoted = 2000, 0
    for t in range(trials):
        y, champ, chal = pair(100, 0.7, 0.7, seed=10_000 + t, overlap=0.55)
        later = pair(300, 0.7, 0.7, seed=50_000 + t, overlap=0.55)
        promoted += decide(y, champ, chal, BINARY, cfg(), out_of_time=later).promote
    assert promoted / trials <= 0.05 + 4 * np.sqrt(0.05 * 0.95 / trials)


def test_out_of_time_rows_give_the_evidence_the_own_rows_lack():
    y = np.zeros(40, dtype=int)
    own = _rows(y, np.ones(40, bool), np.ones(40, bool))  # no discordant row: no evidence at all
    own = (own[0], own[1], own[1] * 0.99 + 0.005)  # not a copy of the champion
    yx = np.zeros(100, dtype=int)
    later = _rows(yx, np.arange(100) < 50, np.arange(100) < 90)  # the predecessor alone right on 40
    alone = decide(*own, BINARY, cfg())
    assert not alone.promote and alone.evidence.p_value == 1.0
    pooled = decide(*own, BINARY, cfg(), out_of_time=later)
    assert pooled.promote and pooled.evidence.p_value < 1e-9
    assert pooled.evidence.model_extra["out_of_time_rows"] == 100
    assert pooled.evidence.n == 40 and pooled.evidence.improvement == 0.0  # (c) on the challenger's own rows
    assert "pooled with 100 out-of-time rows" in " ".join(pooled.reasons)


def test_out_of_time_rows_cannot_promote_a_challenger_worse_on_its_own_rows():
    y = np.zeros(40, dtype=int)
    own = _rows(y, np.ones(40, bool), np.arange(40) >= 3)  # the challenger itself loses 3 rows
    later = _rows(np.zeros(200, dtype=int), np.arange(200) < 100, np.ones(200, bool))
    result = decide(*own, BINARY, cfg(), out_of_time=later)
    assert result.evidence.checks["significance"] and not result.evidence.checks["min_effect"]
    assert not result.promote


def test_out_of_time_rows_do_not_make_a_copy_of_the_champion_promotable():
    y = np.zeros(40, dtype=int)
    own = _rows(y, np.ones(40, bool), np.ones(40, bool))
    later = _rows(np.zeros(100, dtype=int), np.arange(100) < 50, np.ones(100, bool))
    result = decide(own[0], own[1], own[1], BINARY, cfg(), out_of_time=later)
    assert not result.promote and "identical" in result.reasons[0]


def test_out_of_time_rows_are_not_pooled_into_a_metric_that_is_no_mean_over_rows():
    y, champ, chal = pair(200, 0.8, 0.8, seed=3)
    later = pair(100, 0.6, 0.9, seed=4)
    result = decide(y, champ, chal, BINARY, gate_cfg("f1"), out_of_time=later)
    plain = decide(y, champ, chal, BINARY, gate_cfg("f1"))
    assert result.evidence.p_value == plain.evidence.p_value
    assert "not pooled" in result.evidence.model_extra["out_of_time_note"]


def test_out_of_time_rows_of_the_wrong_shape_are_refused():
    y, champ, chal = pair(50, 0.8, 0.8, seed=5)
    with pytest.raises(ValueError, match="out_of_time predecessor_proba"):
        decide(y, champ, chal, BINARY, cfg(), out_of_time=(y, champ, chal[:10]))


# --------------------------------------------------------------------- a drifted champion
DRIFT = "version 1 scored 0.61 on batch b7 against 0.85 held out (p=1e-06 <= 0.0076)"


@pytest.mark.parametrize("test", ["mcnemar", "bootstrap"])
def test_a_drifted_champion_gives_way_to_a_challenger_not_worse_only_when_configured(test):
    """As good as the champion on the same rows (no test can separate them): kept without a concept
    alarm, or as shipped (``drifted_champion: better``); replaced with ``not_worse`` when a concept
    alarm stands against the champion."""
    y, champ, chal = pair(400, 0.80, 0.80, seed=11)
    base = {"test": test} if test == "bootstrap" else {}
    strict = cfg(**base)
    assert strict.drifted_champion == "better"  # as shipped
    assert decide(y, champ, chal, BINARY, strict, champion_drifted=DRIFT).decision == "keep"
    flip = cfg(drifted_champion="not_worse", **base)
    assert decide(y, champ, chal, BINARY, flip).decision == "keep"  # no alarm: the usual test
    d = decide(y, champ, chal, BINARY, flip, champion_drifted=DRIFT)
    assert d.decision == "promote", d.reasons
    assert d.evidence.p_value > 0.05 and d.evidence.improvement_ci[1] > 0  # not better, not worse
    assert d.evidence.drifted_champion == DRIFT
    assert any("drifted champion" in r and DRIFT in r for r in d.reasons)


def test_a_drifted_champion_still_keeps_a_worse_challenger_out():
    y, champ, chal = pair(400, 0.85, 0.70, seed=12)
    d = decide(y, champ, chal, BINARY, cfg(drifted_champion="not_worse"), champion_drifted=DRIFT)
    assert d.decision == "keep"
    assert d.evidence.improvement_ci[1] < 0
    assert any("significantly worse" in r for r in d.reasons)
    # and a copy of the champion changes nothing
    same = decide(y, champ, champ.copy(), BINARY, cfg(drifted_champion="not_worse"), champion_drifted=DRIFT)
    assert same.decision == "keep"
