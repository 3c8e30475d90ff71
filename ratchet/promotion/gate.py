"""The promotion gate: should the challenger replace the champion?

Pure functions, no I/O. Both models are scored on the SAME held-out rows, so
the comparison is paired: the question is not "is 0.87 > 0.85?" but "on the
rows where the two models disagree, does the challenger win more often than
chance would explain?".

Rules (``decide``):

* no champion yet: promote iff the challenger meets the absolute floor (and the
  absolute size guardrail, when one is set);
* otherwise promote iff all of
  (a) the challenger meets the floor (a ceiling for ``log_loss``),
  (b) a paired one-sided test says the challenger is better at level ``alpha``,
  (c) the observed improvement is at least ``min_effect``,
  (d) the guardrails (latency ratio, model size) pass when they are set.

Tests: accuracy with ``test="mcnemar"`` uses the exact one-sided McNemar test
(a binomial test on the discordant rows); every other metric, or
``test="bootstrap"``, uses a seeded paired bootstrap of the metric difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint

from ratchet.core.metrics import (
    check_classes,
    check_metric_defined,
    check_proba,
    check_y,
    higher_is_better,
    score_metric,
)
from ratchet.promotion.decision import GateDecision

# Elements of one (resamples x rows) index block in the bootstrap: bounds memory.
_BOOT_BLOCK_ELEMENTS = 2_000_000


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
def _row_log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    # sklearn.metrics.log_loss clips to [eps, 1-eps] with eps of the dtype, then averages this.
    eps = np.finfo(p.dtype).eps
    return -np.log(np.clip(p[np.arange(len(y)), y], eps, 1 - eps))


def _f1_resampled(yb: np.ndarray, pb: np.ndarray, k: int) -> np.ndarray:
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


class _ResampledAUC:
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


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    b = idx.shape[0]
    flat = (idx + (np.arange(b) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def _improvement_statistic(
    metric: str, y: np.ndarray, champ: np.ndarray, chal: np.ndarray, k: int
) -> Callable[[np.ndarray], np.ndarray]:
    if metric == "accuracy":
        d = (chal.argmax(1) == y).astype(np.float64) - (champ.argmax(1) == y)
        return lambda idx: d[idx].mean(axis=1)
    if metric == "log_loss":
        d = _row_log_loss(y, champ) - _row_log_loss(y, chal)  # lower loss is better
        return lambda idx: d[idx].mean(axis=1)
    if metric == "f1":
        pc, ph = champ.argmax(1), chal.argmax(1)
        return lambda idx: _f1_resampled(y[idx], ph[idx], k) - _f1_resampled(y[idx], pc[idx], k)
    if metric == "roc_auc":
        auc_c, auc_h = _ResampledAUC(y, champ, k), _ResampledAUC(y, chal, k)

        def stat(idx: np.ndarray) -> np.ndarray:
            counts = _counts(idx, len(y))
            return auc_h(counts) - auc_c(counts)

        return stat
    raise ValueError(f"unknown metric {metric!r}")


def _paired_bootstrap(
    stat: Callable[[np.ndarray], np.ndarray], n: int, samples: int, seed: int, alpha: float
) -> dict[str, Any]:
    # Hand-written rather than scipy.stats.bootstrap: we need the one-sided p-value
    # from the same draws (scipy returns only the interval), resamples where roc_auc
    # is undefined must be dropped rather than turn the interval into NaN, and the
    # seeding keyword changed (random_state -> rng) within our supported scipy range.
    # The resampling itself is the three lines below.
    rng = np.random.default_rng(seed)
    block = max(1, _BOOT_BLOCK_ELEMENTS // n)
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


def _mcnemar(y: np.ndarray, champ: np.ndarray, chal: np.ndarray, alpha: float) -> dict[str, Any]:
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


# --------------------------------------------------------------------- decision
def _positive_number(value: Any, name: str, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def decide(
    y_true: Any,
    champion_proba: Any | None,
    challenger_proba: Any,
    classes: Sequence[Any],
    cfg: Any,
    *,
    challenger_latency_s: float | None = None,
    champion_latency_s: float | None = None,
    max_latency_ratio: float | None = None,
    challenger_size_bytes: int | None = None,
    max_size_bytes: int | None = None,
) -> GateDecision:
    """Promote the challenger or keep the champion; both scored on the same rows.

    ``cfg`` is a ``GateConfig``. ``max_latency_ratio`` / ``max_size_bytes`` default
    to ``cfg``'s fields of those names when it has them.
    """
    metric = cfg.metric
    hib = higher_is_better(metric)
    alpha = float(cfg.alpha)
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    min_effect = float(cfg.min_effect)
    floor = float(cfg.floor)
    if max_latency_ratio is None:
        max_latency_ratio = getattr(cfg, "max_latency_ratio", None)
    if max_size_bytes is None:
        max_size_bytes = getattr(cfg, "max_size_bytes", None)

    k = check_classes(classes)
    y = check_y(y_true, k)
    n = len(y)
    chal = check_proba(challenger_proba, n, k, "challenger_proba")
    champ = None if champion_proba is None else check_proba(champion_proba, n, k, "champion_proba")
    check_metric_defined(metric, y, k)

    chal_v = score_metric(metric, y, chal, k)
    ev: dict[str, Any] = {
        "metric": metric,
        "higher_is_better": hib,
        "n": n,
        "classes": [str(c) for c in classes],
        "challenger": chal_v,
        "alpha": alpha,
        "min_effect": min_effect,
        "floor": floor,
    }
    if metric == "f1" and k == 2:
        ev["positive_class"] = str(classes[-1])
    checks: dict[str, bool] = {}
    passed: list[str] = []
    failed: list[str] = []

    def check(name: str, ok: bool, text: str) -> None:
        checks[name] = ok
        (passed if ok else failed).append(text)

    # (a) absolute floor (a ceiling for log_loss)
    if hib:
        ok = chal_v >= floor
        check("floor", ok, f"{metric}={_fmt(chal_v)} {'≥' if ok else '<'} floor={_fmt(floor)}"
              + ("" if ok else ": below the absolute floor"))
    else:
        ok = chal_v <= floor
        check("floor", ok, f"{metric}={_fmt(chal_v)} {'≤' if ok else '>'} ceiling={_fmt(floor)}"
              + ("" if ok else ": above the absolute ceiling (lower is better)"))

    if champ is None:
        ev.update(champion=None, difference=None, improvement=None, test=None, p_value=None,
                  improvement_ci=None, difference_ci=None)
        passed.append("no champion yet: the floor and absolute guardrails decide")
    else:
        champ_v = score_metric(metric, y, champ, k)
        diff = chal_v - champ_v
        improvement = diff if hib else -diff
        ev.update(champion=champ_v, difference=diff, improvement=improvement)
        use_mcnemar = metric == "accuracy" and cfg.test == "mcnemar"
        ev["test_requested"] = cfg.test
        if use_mcnemar:
            ev["test"] = "mcnemar_exact_one_sided"
            res = _mcnemar(y, champ, chal, alpha)
        else:
            samples = int(cfg.bootstrap_samples)
            if samples < 1:
                raise ValueError(f"bootstrap_samples must be >= 1, got {samples}")
            ev["test"] = "paired_bootstrap_one_sided"
            if cfg.test == "mcnemar":
                ev["note"] = f"McNemar applies to accuracy only; used the paired bootstrap for {metric}"
            res = _paired_bootstrap(
                _improvement_statistic(metric, y, champ, chal, k), n, samples, int(cfg.seed), alpha
            )
        ev.update(res)
        ev["ci_level"] = 1 - 2 * alpha
        lo, hi = res["improvement_ci"]
        ev["difference_ci"] = [lo, hi] if hib else [-hi, -lo]
        p = res["p_value"]

        # (b) paired one-sided test
        identical = np.array_equal(champ, chal)
        ev["identical_predictions"] = bool(identical)
        detail = ""
        if "discordant" in res:
            d = res["discordant"]
            detail = (f" ({d['challenger_only_correct']} rows only the challenger gets right vs "
                      f"{d['champion_only_correct']} only the champion)")
        if identical:
            check("significance", False, "challenger's predictions are identical to the champion's")
        elif p <= alpha:
            check("significance", True, f"p={p:.3g} ≤ alpha={alpha:g}: significantly better{detail}")
        else:
            check("significance", False, f"p={p:.3g} > alpha={alpha:g}: not significantly better{detail}")

        # (c) practical effect
        ok = improvement >= min_effect
        check("min_effect", ok, f"improvement={improvement:+.4f} {'≥' if ok else '<'} "
              f"min_effect={min_effect:.4f}" + ("" if ok else ": too small to matter"))

    # (d) guardrails
    guard: dict[str, Any] = {}
    if challenger_latency_s is not None:
        guard["challenger_latency_s"] = _positive_number(challenger_latency_s, "challenger_latency_s")
    if champion_latency_s is not None:
        guard["champion_latency_s"] = _positive_number(champion_latency_s, "champion_latency_s")
    if "challenger_latency_s" in guard and "champion_latency_s" in guard:
        guard["latency_ratio"] = guard["challenger_latency_s"] / guard["champion_latency_s"]
    if max_latency_ratio is not None:
        limit = guard["max_latency_ratio"] = _positive_number(max_latency_ratio, "max_latency_ratio")
        if champ is None:
            passed.append("latency guardrail not applicable: no champion to compare against")
        elif "latency_ratio" not in guard:
            check("latency", False, "latency guardrail is set but challenger and champion "
                  "latencies were not both measured")
        else:
            r = guard["latency_ratio"]
            ok = r <= limit
            check("latency", ok, f"latency ratio={r:.2f} {'≤' if ok else '>'} max={limit:.2f}"
                  + ("" if ok else ": challenger too slow"))
    if challenger_size_bytes is not None:
        guard["challenger_size_bytes"] = int(
            _positive_number(challenger_size_bytes, "challenger_size_bytes", allow_zero=True)
        )
    if max_size_bytes is not None:
        limit_b = guard["max_size_bytes"] = int(_positive_number(max_size_bytes, "max_size_bytes"))
        size = guard.get("challenger_size_bytes")
        if size is None:
            check("size", False, "size guardrail is set but the challenger's size was not given")
        else:
            ok = size <= limit_b
            check("size", ok, f"size={size:,} bytes {'≤' if ok else '>'} max={limit_b:,}"
                  + ("" if ok else ": challenger too large"))
    ev["guardrails"] = guard
    ev["checks"] = checks

    decision: Literal["promote", "keep"] = "promote" if all(checks.values()) else "keep"
    return GateDecision(decision=decision, reasons=failed + passed, evidence=ev)
