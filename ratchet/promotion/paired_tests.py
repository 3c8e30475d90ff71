"""The paired tests behind the promotion gate: pure statistics on two models' predictions for the
same rows, no decision and no I/O (``ratchet.promotion.gate`` decides with them).

* classification: the exact one-sided McNemar test (accuracy), and a seeded paired bootstrap
  of any metric's improvement (accuracy, f1, roc_auc, log_loss), computed for blocks of
  resamples at once;
* regression: the one-sided Wilcoxon signed-rank test of per-row error differences, the
  studentized bootstrap test of the metric (Hall's transform), and the paired bootstrap of
  the RMSE's or MAE's improvement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import binomtest, wilcoxon
from statsmodels.stats.proportion import proportion_confint

# Elements of one (resamples x rows) index block in the bootstrap: bounds memory.
BOOT_BLOCK_ELEMENTS = 2_000_000


# --------------------------------------------------------------------- paired bootstrap
# The bootstrap statistic is the challenger's improvement over the champion
# (positive = challenger better), computed for a block of resamples at once:
# ``idx`` is (resamples, n) row indices, shared by both models (paired).
#
# Why hand-written rather than sklearn per resample: one sklearn metric call
# costs 1-6 ms here, i.e. 4-25 s for 2,000 resamples of two models. accuracy
# and log_loss are means of per-row values, so resampling rows is exact; f1 and
# roc_auc are computed from resampled counts with the same formulas sklearn
# uses. tests/test_gate.py checks each against sklearn on resamples.
def row_log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    # sklearn.metrics.log_loss clips to [eps, 1-eps] with eps of the dtype, then averages this.
    eps = np.finfo(p.dtype).eps
    return -np.log(np.clip(p[np.arange(len(y)), y], eps, 1 - eps))


def f1_resampled(yb: np.ndarray, pb: np.ndarray, k: int) -> np.ndarray:
    """f1 per resample row of (resamples, n) labels/predictions; sklearn's zero_division=0."""
    labels = [k - 1] if k == 2 else range(k)
    scores = []
    for c in labels:
        yc, pc = yb == c, pb == c
        tp = np.count_nonzero(yc & pc, axis=1)
        fp = np.count_nonzero(~yc & pc, axis=1)
        fn = np.count_nonzero(yc & ~pc, axis=1)
        denom = 2 * tp + fp + fn
        scores.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
    return np.mean(scores, axis=0)


class ResampledAUC:
    """ROC AUC of one model on many resamples, as the Mann-Whitney statistic with
    ties counted half (what sklearn's trapezoidal ROC AUC equals), from per-row counts."""

    def __init__(self, y: np.ndarray, p: np.ndarray, k: int):
        cols = [k - 1] if k == 2 else range(k)  # binary, or one-vs-rest macro
        self.parts = []
        for c in cols:
            score = p[:, c]
            order = np.argsort(score, kind="stable")
            s = score[order]
            starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
            self.parts.append((order, starts, (y[order] == c).astype(np.float64)))

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        aucs = []
        for order, starts, pos in self.parts:
            w = counts[:, order]
            wp = w * pos
            pos_g = np.add.reduceat(wp, starts, axis=1)  # positives per distinct score
            neg_g = np.add.reduceat(w - wp, starts, axis=1)
            below = np.cumsum(neg_g, axis=1) - neg_g  # negatives with a strictly lower score
            num = np.sum(pos_g * (below + 0.5 * neg_g), axis=1)
            den = pos_g.sum(axis=1) * neg_g.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                aucs.append(np.where(den > 0, num / den, np.nan))  # a class absent from a resample
        return np.mean(aucs, axis=0)


def row_counts(idx: np.ndarray, n: int) -> np.ndarray:
    b = idx.shape[0]
    flat = (idx + (np.arange(b) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def improvement_statistic(
    metric: str, y: np.ndarray, champ: np.ndarray, chal: np.ndarray, k: int
) -> Callable[[np.ndarray], np.ndarray]:
    if metric == "accuracy":
        d = (chal.argmax(1) == y).astype(np.float64) - (champ.argmax(1) == y)
        return lambda idx: d[idx].mean(axis=1)
    if metric == "log_loss":
        d = row_log_loss(y, champ) - row_log_loss(y, chal)  # lower loss is better
        return lambda idx: d[idx].mean(axis=1)
    if metric == "f1":
        pc, ph = champ.argmax(1), chal.argmax(1)
        return lambda idx: f1_resampled(y[idx], ph[idx], k) - f1_resampled(y[idx], pc[idx], k)
    if metric == "roc_auc":
        auc_c, auc_h = ResampledAUC(y, champ, k), ResampledAUC(y, chal, k)

        def stat(idx: np.ndarray) -> np.ndarray:
            counts = row_counts(idx, len(y))
            return auc_h(counts) - auc_c(counts)

        return stat
    raise ValueError(f"unknown metric {metric!r}")


def paired_bootstrap(
    stat: Callable[[np.ndarray], np.ndarray], n: int, samples: int, seed: int, alpha: float
) -> dict[str, Any]:
    # Hand-written rather than scipy.stats.bootstrap: we need the one-sided p-value
    # from the same draws (scipy returns only the interval), resamples where roc_auc
    # is undefined must be dropped rather than turn the interval into NaN, and the
    # seeding keyword changed (random_state -> rng) within our supported scipy range.
    # The resampling itself is the three lines below.
    rng = np.random.default_rng(seed)
    block = max(1, BOOT_BLOCK_ELEMENTS // n)
    dist = np.empty(samples)
    for start in range(0, samples, block):
        idx = rng.integers(0, n, size=(min(block, samples - start), n))
        dist[start : start + len(idx)] = stat(idx)
    valid = dist[np.isfinite(dist)]
    if valid.size == 0:
        raise ValueError("the metric is undefined on every bootstrap resample: test set too small")
    lo, hi = np.quantile(valid, [alpha, 1 - alpha])
    return {
        "p_value": float(np.mean(valid <= 0)),
        "improvement_ci": [float(lo), float(hi)],
        "bootstrap_samples": samples,
        "bootstrap_dropped": int(samples - valid.size),
        "seed": seed,
    }


def mcnemar(y: np.ndarray, champ: np.ndarray, chal: np.ndarray, alpha: float) -> dict[str, Any]:
    champ_ok = champ.argmax(1) == y
    chal_ok = chal.argmax(1) == y
    b = int(np.count_nonzero(chal_ok & ~champ_ok))  # rows only the challenger gets right
    c = int(np.count_nonzero(champ_ok & ~chal_ok))  # rows only the champion gets right
    m, n = b + c, len(y)
    if m == 0:
        p, ci = 1.0, [0.0, 0.0]
    else:
        # Exact one-sided McNemar: under H0 each discordant row is a fair coin flip.
        # (statsmodels' mcnemar() is two-sided only.)
        p = float(binomtest(b, m, 0.5, alternative="greater").pvalue)
        # Interval for the accuracy difference (b - c)/n = (2*pi - 1)*m/n, from an
        # interval for pi = b/m at level 1-2*alpha. Clopper-Pearson rather than Wilson
        # because it inverts the exact test above: lower bound > 0 <=> p <= alpha.
        lo, hi = proportion_confint(b, m, alpha=2 * alpha, method="beta")
        ci = [float((2 * lo - 1) * m / n), float((2 * hi - 1) * m / n)]
    return {
        "p_value": p,
        "improvement_ci": ci,
        "ci_method": "exact conditional on the discordant rows (Clopper-Pearson)",
        "discordant": {"challenger_only_correct": b, "champion_only_correct": c, "total": m},
    }


# --------------------------------------------------------------------- regression
# Predictions that agree to float32 precision (the network's output) are the same prediction:
# a tie in the paired test, never a win that float noise handed to one side.
TIE_RTOL = 1e-6


def row_errors(loss: str, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    e = np.abs(pred - y)
    return e if loss == "abs" else e * e


def regression_improvement_statistic(
    metric: str, y: np.ndarray, champ: np.ndarray, chal: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """The challenger's improvement in ``metric`` (positive: lower error) per resample of rows."""
    if metric == "mae":
        d = np.abs(champ - y) - np.abs(chal - y)
        return lambda idx: d[idx].mean(axis=1)
    if metric == "rmse":
        sq_c, sq_h = (champ - y) ** 2, (chal - y) ** 2
        return lambda idx: np.sqrt(sq_c[idx].mean(axis=1)) - np.sqrt(sq_h[idx].mean(axis=1))
    raise ValueError(f"unknown regression metric {metric!r}; expected rmse or mae")


def wilcoxon_one_sided(d: np.ndarray) -> dict[str, Any]:
    """One-sided Wilcoxon signed-rank test of per-row error differences ``d`` = champion's
    minus challenger's error (positive: the challenger erred less on that row).

    Rows where both models err alike (d == 0) are left out, as McNemar leaves out the rows
    where both are right or both wrong; scipy's default ``zero_method="wilcox"`` does the
    same. With no row left the test has nothing to say: p = 1 (and older scipy raises there)."""
    better, worse = int(np.count_nonzero(d > 0)), int(np.count_nonzero(d < 0))
    rows = {"challenger_better": better, "champion_better": worse, "tied": int(len(d) - better - worse)}
    if better + worse == 0:
        return {"p_value": 1.0, "statistic": None, "rows": rows}
    res = wilcoxon(d[d != 0], alternative="greater")
    return {"p_value": float(res.pvalue), "statistic": float(res.statistic), "rows": rows}


def hall_statistic(moments: np.ndarray, n: int) -> np.ndarray:
    """Hall's (1992) skewness-removing transform of the studentized mean, from the raw moments
    (mean of x, x², x³; last axis) of ``n`` values: sqrt(n) (r + g r²/3 + g/(6n) + g² r³/27),
    r = mean/sd, g = skewness. NaN where the sd is 0.

    Hand-written: neither scipy nor statsmodels has it (scipy.stats.bootstrap gives intervals,
    not a studentized test's p-value); it is the lines below (P. Hall, "On the removal of
    skewness by transformation", JRSS B 54, 1992). From moments, so that a block of resamples
    is one matrix product of their row counts (``row_counts``), not a gather and a cube per row."""
    m1, m2, m3 = moments[..., 0], moments[..., 1], moments[..., 2]
    var = (m2 - m1 * m1) * n / (n - 1)
    sd = np.sqrt(np.where(var > 0, var, np.nan))
    g = (m3 - 3 * m1 * m2 + 2 * m1**3) / sd**3
    r = m1 / sd
    return np.sqrt(n) * (r + g * r * r / 3 + g / (6 * n) + g * g * r**3 / 27)


def cochran_rows(centred: np.ndarray) -> float:
    """The rows a mean of values this skewed needs before a test of it is trusted: 28 + 25 g²,
    g the sample's skewness (Cochran's rule in the form of Sugden, Smith & Jones, "Cochran's rule
    for simple random sampling", JRSS B 62, 2000)."""
    sd = float(np.sqrt(np.mean(centred * centred)))
    g = float(np.mean(centred**3)) / sd**3 if sd > 0 else 0.0
    return 28 + 25 * g * g


def studentized(d: np.ndarray, samples: int, seed: int, alpha: float) -> dict[str, Any]:
    """One-sided test that the mean of ``d`` (per-row loss differences, positive: the challenger
    lost less) is above 0: Hall's transformed studentized mean, calibrated by the bootstrap of
    the centred rows (the null's distribution of the statistic).

    Why not the percentile bootstrap of the metric: a challenger with the same MAE but another
    error shape (10% better on 95% of rows, 2.9x worse on the rest) leaves ``d`` skewed, and a
    sample that happens to hold few of the bad rows looks better than it is; the percentile
    bootstrap promoted that 6.6% of the time on 2,000 rows and 15% on 100 at alpha 5%. The
    studentized statistic weighs the mean by its spread, the transform takes out the skewness
    (second-order accurate), and the bootstrap calibrates what is left. Measured on that case
    at alpha 5% with 1,000 resamples (95% intervals): 2.75% on 100 rows [2.3, 3.3] (4,000 trials; the
    plain bootstrap-t 7.1%, a t-test 18%), 4.7% on 300 [4.1, 5.4] (4,000), 5.3% on 500 [4.8, 5.9]
    (6,000 over two draws) and 5.0% on 2,000 [4.6, 5.5] (8,500 over three seeds): at its level within
    Monte Carlo error at 100 and 2,000 rows, at most a few tenths above it in between (a test of a mean
    is exact for no n over every distribution). Power alone at a 5% lower MAE on 2,000 rows: 81%.
    Tried and not kept: null resampling by exponential tilting instead of centring, and the tilted
    bootstrap of the plain mean, each within 0.4 point of this on the same 500-row trials.

    The guard: where ``d`` is skewed towards the challenger's losses (a few rows carry large ones), a
    sample that holds fewer of them than the population looks better than it is, and no resampling of
    that sample can know of the rows it lacks. The test then says nothing (p = 1) below Cochran's rule,
    28 + 25 g² rows for skewness g (``cochran_rows``). Only against the test: skewness towards the
    challenger's gains makes a one-sided test of "better" conservative. The case: the same trade-off
    judged by RMSE (squared errors, so the challenger is 9% worse, but 5 rows in 100 carry its loss) was
    promoted 6.2-6.6% of the time on 100 rows without the guard and 5.1% with it (2,500 trials); the
    guard left the power at a 5% lower error unchanged on 100 rows (8.2% squared, 10% absolute, 1,000
    trials) and on 2,000 (78%, 300 trials), where it needs a skewness beyond 8.9 to bind. Cochran's rule
    in both directions (tried) also stopped a challenger with half the error on every row on 300 rows:
    squared normal errors have skewness 2.8. Tried and not kept for this case: the double bootstrap
    (Beran's prepivoting; 6.1%), the m-out-of-n bootstrap (m = n^0.8 or n^0.9; 6.1-6.2%), one pseudo-row
    at the worst difference (5.8%). ``benchmarks/promotion_gate.py``."""
    n = len(d)
    centred = d - d.mean()
    powers = np.stack([centred, centred * centred, centred * centred * centred], axis=1) / n
    observed = float(hall_statistic(np.array([d.mean(), np.mean(d * d), np.mean(d * d * d)]), n))
    if not np.isfinite(observed):  # every row's difference is the same number
        return {"p_value": 0.0 if d.mean() > 0 else 1.0, "statistic": None}
    rows_needed = cochran_rows(centred)
    if n <= rows_needed and np.mean(centred**3) < 0:
        return {"p_value": 1.0, "statistic": observed, "rows_needed": rows_needed,
                "note": f"too few rows for a test of the mean at this skewness: {n} ≤ 28 + 25 g² = "
                        f"{rows_needed:.0f} (Cochran's rule)"}
    res = paired_bootstrap(lambda idx: observed - hall_statistic(row_counts(idx, n) @ powers, n), n, samples, seed, alpha)
    # The Monte Carlo p-value (1 + #{T* >= T}) / (B + 1) (Davison & Hinkley 1997, eq. 4.11), not #/B: with B
    # resamples, #/B <= alpha admits floor(alpha B) + 1 of the B + 1 ranks T can take among them (5.1% at
    # B = 1,000 and alpha 5%), this admits floor(alpha (B + 1)): the level's share, whatever B.
    valid = samples - res["bootstrap_dropped"]
    exceed = round(res["p_value"] * valid)
    return {"p_value": (1 + exceed) / (1 + valid), "statistic": observed, "bootstrap_samples": valid}
