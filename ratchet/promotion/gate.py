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
  (d) the guardrails (latency ratio, model size) pass when they are set;
* against a champion a concept-drift alarm stands on, with ``gate.drifted_champion: not_worse``
  (opt-in), (b) asks only that the challenger be not significantly worse and (c) is waived
  (``_judge``; in ``benchmarks/promotion_gate.py`` a challenger 1 point worse on 2,000 rows is then
  promoted 64 % of the time, an equal one 97 %).

Tests: accuracy with ``test="mcnemar"`` uses the exact one-sided McNemar test
(a binomial test on the discordant rows); every other metric, or
``test="bootstrap"``, uses a seeded paired bootstrap of the metric difference.

A regression target goes through ``decide_regression``: rmse or mae, a floor on R²
(default 0: no worse than predicting the mean), and a paired test on the same rows: by
default both the one-sided Wilcoxon signed-rank test of per-row errors and the paired bootstrap
of the metric must say better; see its docstring for the choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

import numpy as np

from ratchet.core.metrics import (
    REGRESSION_METRICS,
    check_classes,
    check_metric_defined,
    check_proba,
    check_values,
    check_y,
    higher_is_better,
    score_metric,
    score_regression,
)
from ratchet.promotion.decision import GateDecision, GateEvidence
from ratchet.promotion.paired_tests import (
    TIE_RTOL,
    improvement_statistic,
    mcnemar,
    paired_bootstrap,
    regression_improvement_statistic,
    row_errors,
    studentized,
    wilcoxon_one_sided,
)

if TYPE_CHECKING:
    from ratchet.core.config import GateConfig

# metrics whose paired test may pool rows scored by other models of the challenger's recipe: a mean
# over rows (f1 and roc_auc are not: pooling two models' scores would mix their scales)
POOLED_METRICS = ("accuracy", "log_loss")
# cfg.regression_test: the parts that must all say better (see decide_regression)
REGRESSION_TESTS = ("wilcoxon+studentized", "studentized", "wilcoxon+bootstrap", "wilcoxon", "bootstrap")
REGRESSION_TEST_NAMES = {"wilcoxon": "wilcoxon_signed_rank", "studentized": "studentized_bootstrap",
                         "bootstrap": "paired_bootstrap"}

# --------------------------------------------------------------------- decision
class _Checks:
    """The gate's checks by name and its reasons, failed ones first."""

    def __init__(self) -> None:
        self.checks: dict[str, bool] = {}
        self.passed: list[str] = []
        self.failed: list[str] = []

    def __call__(self, name: str, ok: bool, text: str) -> None:
        self.checks[name] = ok
        (self.passed if ok else self.failed).append(text)

    def note(self, text: str) -> None:
        self.passed.append(text)

    def decision(self, ev: dict[str, Any]) -> GateDecision:
        ev["checks"] = self.checks
        decision: Literal["promote", "keep"] = "promote" if all(self.checks.values()) else "keep"
        return GateDecision(decision=decision, reasons=self.failed + self.passed,
                            evidence=GateEvidence.model_validate(ev))


def _significance(check: _Checks, identical: bool, p: float, alpha: float, detail: str) -> None:
    if identical:
        check("significance", False, "challenger's predictions are identical to the champion's")
    elif p <= alpha:
        check("significance", True, f"p={p:.3g} ≤ alpha={alpha:g}: significantly better{detail}")
    else:
        check("significance", False, f"p={p:.3g} > alpha={alpha:g}: not significantly better{detail}")


def _not_worse(check: _Checks, found: _Comparison, alpha: float, drifted: str) -> None:
    lo, hi = found.interval
    if found.identical:
        check("significance", False, "challenger's predictions are identical to the champion's")
    elif lo == hi == 0:
        check("significance", False, f"no row told apart{found.detail}: the challenger would change nothing")
    elif hi > 0:
        check("significance", True, f"not significantly worse (improvement up to {hi:+.4f} at one-sided "
              f"alpha={alpha:g}{found.detail}), enough against a drifted champion: {drifted}")
    else:
        check("significance", False, f"significantly worse (improvement at most {hi:+.4f} at one-sided "
              f"alpha={alpha:g}{found.detail}), even against a drifted champion")


def _min_effect(check: _Checks, improvement: float, min_effect: float) -> None:
    ok = improvement >= min_effect
    check("min_effect", ok, f"improvement={improvement:+.4f} {'≥' if ok else '<'} "
          f"min_effect={min_effect:.4f}" + ("" if ok else ": too small to matter"))


class Guardrails(TypedDict, total=False):
    """What the guardrails are given, besides the scores: measurements of the two models, and
    limits that override ``cfg``'s fields of those names."""

    challenger_latency_s: float | None
    champion_latency_s: float | None
    max_latency_ratio: float | None
    challenger_size_bytes: int | None
    max_size_bytes: int | None


def _guardrails(check: _Checks, has_champion: bool, cfg: GateConfig, given: Guardrails) -> dict[str, Any]:
    """The latency and size guardrails, checked when their limits are set; their evidence."""
    unknown = set(given) - set(Guardrails.__annotations__)
    if unknown:
        raise TypeError(f"unknown guardrail argument(s): {', '.join(sorted(unknown))}")
    max_latency_ratio, max_size_bytes = _limits(cfg, given.get("max_latency_ratio"), given.get("max_size_bytes"))
    challenger_latency_s, champion_latency_s = given.get("challenger_latency_s"), given.get("champion_latency_s")
    challenger_size_bytes = given.get("challenger_size_bytes")
    guard: dict[str, Any] = {}
    if challenger_latency_s is not None:
        guard["challenger_latency_s"] = _positive_number(challenger_latency_s, "challenger_latency_s")
    if champion_latency_s is not None:
        guard["champion_latency_s"] = _positive_number(champion_latency_s, "champion_latency_s")
    if "challenger_latency_s" in guard and "champion_latency_s" in guard:
        guard["latency_ratio"] = guard["challenger_latency_s"] / guard["champion_latency_s"]
    if max_latency_ratio is not None:
        limit = guard["max_latency_ratio"] = _positive_number(max_latency_ratio, "max_latency_ratio")
        if not has_champion:
            check.note("latency guardrail not applicable: no champion to compare against")
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
    return guard


def _alpha_and_effect(cfg: Any) -> tuple[float, float]:
    alpha = float(cfg.alpha)
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    return alpha, float(cfg.min_effect)


def _limits(cfg: Any, max_latency_ratio: float | None, max_size_bytes: int | None) -> tuple[Any, Any]:
    """The guardrail limits given, else ``cfg``'s fields of those names when it has them."""
    if max_latency_ratio is None:
        max_latency_ratio = getattr(cfg, "max_latency_ratio", None)
    if max_size_bytes is None:
        max_size_bytes = getattr(cfg, "max_size_bytes", None)
    return max_latency_ratio, max_size_bytes


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


@dataclass(frozen=True)
class _Comparison:
    """What a task's paired test found on the rows both models scored: the evidence it adds
    (in the order it is shown), its p-value, the improvement in the metric (positive: the
    challenger is better), whether the predictions are the same, the improvement's interval
    (at level 1 - 2 alpha: each end a one-sided test at alpha) and the test's detail."""

    evidence: dict[str, Any]
    p_value: float
    improvement: float
    identical: bool
    interval: tuple[float, float]
    detail: str = ""


def _judge(cfg: GateConfig, ev: dict[str, Any], floor: tuple[bool, str], compare: Callable[[], _Comparison] | None,
           guardrails: Guardrails, drifted: str | None = None) -> GateDecision:
    """The one decision of the gate, whatever the task: (a) the floor, then against a champion
    (b) the paired one-sided test at ``alpha`` and (c) the practical effect, and (d) the
    guardrails; promote iff every check passes. ``compare`` is None without a champion.

    ``drifted``: the concept-drift alarm raised against the champion, if any; with
    ``cfg.drifted_champion == "not_worse"`` (b) asks only that the challenger be not significantly
    worse (the interval's upper end above 0: the same one-sided test at ``alpha``, the other way)
    and (c) is waived. Why: the champion's own error has risen significantly on data it never saw,
    so its held-out record no longer stands for it, and where a drift goes on (a gradual one, half
    of a batch on the new rule) the model trained on the newest data is the better bet before any
    paired test on one batch can separate the two; the gate still stops a challenger that is worse."""
    alpha, min_effect = _alpha_and_effect(cfg)
    check = _Checks()
    check("floor", *floor)  # (a)
    if compare is None:
        ev.update(champion=None, difference=None, improvement=None, test=None, p_value=None,
                  improvement_ci=None, difference_ci=None)
        check.note("no champion yet: the floor and absolute guardrails decide")
    else:
        found = compare()
        ev.update(found.evidence)
        if drifted is not None and cfg.drifted_champion == "not_worse":
            ev["drifted_champion"] = drifted
            _not_worse(check, found, alpha, drifted)  # (b), (c) waived
        else:
            _significance(check, found.identical, found.p_value, alpha, found.detail)  # (b)
            _min_effect(check, found.improvement, min_effect)  # (c)
    ev["guardrails"] = _guardrails(check, compare is not None, cfg, guardrails)  # (d)
    return check.decision(ev)


def decide(
    y_true: Any,
    champion_proba: Any | None,
    challenger_proba: Any,
    classes: Sequence[Any],
    cfg: GateConfig,
    *,
    out_of_time: tuple[Any, Any, Any] | None = None,
    champion_drifted: str | None = None,
    **guardrails: Unpack[Guardrails],
) -> GateDecision:
    """Promote the challenger or keep the champion; both scored on the same rows.

    ``cfg`` is a ``GateConfig``; ``guardrails`` (``Guardrails``): the models' latencies and
    sizes, and limits that override ``cfg``'s ``max_latency_ratio`` / ``max_size_bytes``.

    ``out_of_time``: (labels, champion's probabilities, predecessors' probabilities) on more rows
    that neither the champion nor the model that scored them saw (``ratchet.promotion.out_of_time``:
    batches published after the champion's data, scored by the challenger's recipe trained just
    before each). They are pooled into the paired test (b) alone, for a metric that is a mean over
    rows (accuracy, log_loss); the floor (a) and the effect (c) stay on the challenger's own rows.

    ``champion_drifted``: the concept-drift alarm against the champion, described, if one was
    raised (``_judge`` says what ``cfg.drifted_champion`` then does).
    """
    metric = cfg.metric
    hib = higher_is_better(metric)
    alpha, min_effect = _alpha_and_effect(cfg)
    floor = float(cfg.floor)

    k = check_classes(classes)
    y = check_y(y_true, k)
    n = len(y)
    chal = check_proba(challenger_proba, n, k, "challenger_proba")
    champ = None if champion_proba is None else check_proba(champion_proba, n, k, "champion_proba")
    check_metric_defined(metric, y, k)

    pooled = None
    if out_of_time is not None and champ is not None:
        y_x = check_y(out_of_time[0], k)
        champ_x = check_proba(out_of_time[1], len(y_x), k, "out_of_time champion_proba")
        chal_x = check_proba(out_of_time[2], len(y_x), k, "out_of_time predecessor_proba")
        if len(y_x) and metric in POOLED_METRICS:
            pooled = (np.concatenate([y, y_x]), np.concatenate([champ, champ_x]), np.concatenate([chal, chal_x]))

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

    # the absolute floor (a ceiling for log_loss)
    if hib:
        ok = chal_v >= floor
        floor_text = (f"{metric}={_fmt(chal_v)} {'≥' if ok else '<'} floor={_fmt(floor)}"
                      + ("" if ok else ": below the absolute floor"))
    else:
        ok = chal_v <= floor
        floor_text = (f"{metric}={_fmt(chal_v)} {'≤' if ok else '>'} ceiling={_fmt(floor)}"
                      + ("" if ok else ": above the absolute ceiling (lower is better)"))

    def compare() -> _Comparison:
        champ_v = score_metric(metric, y, champ, k)
        diff = chal_v - champ_v
        improvement = diff if hib else -diff
        found: dict[str, Any] = {"champion": champ_v, "difference": diff, "improvement": improvement,
                                 "test_requested": cfg.test}
        ty, tc, th = (y, champ, chal) if pooled is None else pooled
        if out_of_time is not None:
            found["out_of_time_rows"] = len(ty) - n
            if pooled is None and len(out_of_time[0]):
                found["out_of_time_note"] = f"not pooled: {metric} is not a mean over rows"
        if metric == "accuracy" and cfg.test == "mcnemar":
            found["test"] = "mcnemar_exact_one_sided"
            res = mcnemar(ty, tc, th, alpha)
        else:
            samples = int(cfg.bootstrap_samples)
            if samples < 1:
                raise ValueError(f"bootstrap_samples must be >= 1, got {samples}")
            found["test"] = "paired_bootstrap_one_sided"
            if cfg.test == "mcnemar":
                found["note"] = f"McNemar applies to accuracy only; used the paired bootstrap for {metric}"
            res = paired_bootstrap(improvement_statistic(metric, ty, tc, th, k), len(ty), samples, int(cfg.seed), alpha)
        found.update(res)
        found["ci_level"] = 1 - 2 * alpha
        lo, hi = res["improvement_ci"]  # with out-of-time rows: of the pooled rows' improvement
        found["difference_ci"] = [lo, hi] if hib else [-hi, -lo]
        identical = bool(np.array_equal(champ, chal))  # a copy of the champion changes nothing, whatever pooled
        found["identical_predictions"] = identical
        detail = ""
        if "discordant" in res:
            d = res["discordant"]
            detail = (f" ({d['challenger_only_correct']} rows only the challenger gets right vs "
                      f"{d['champion_only_correct']} only the champion"
                      + (f"; pooled with {len(ty) - n} out-of-time rows its predecessors scored" if pooled is not None else "")
                      + ")")
        return _Comparison(found, res["p_value"], improvement, identical, (lo, hi), detail)

    return _judge(cfg, ev, (ok, floor_text), None if champ is None else compare, guardrails, champion_drifted)


def decide_regression(
    y_true: Any,
    champion_pred: Any | None,
    challenger_pred: Any,
    cfg: GateConfig,
    *,
    champion_drifted: str | None = None,
    **guardrails: Unpack[Guardrails],
) -> GateDecision:
    """``decide`` for a regression target: predicted numbers, both models on the same rows.

    Metric ``cfg.regression_metric`` (rmse or mae, lower is better). The floor is on R²:
    the challenger must reach ``cfg.regression_floor`` (default 0: no worse than predicting
    the rows' mean, so a first model that beats the mean is promoted). Against a champion,
    ``cfg.regression_test``:

    * ``wilcoxon+studentized`` (default): an intersection-union test of two one-sided tests
      on the same rows; the challenger must win both, and the p-value is the larger of theirs:

      - the Wilcoxon signed-rank test of per-row errors (``cfg.regression_loss``: absolute
        or squared; by default absolute for mae, squared for rmse), champion's minus
        challenger's. Its null, "the two models are interchangeable", keeps its level
        whatever the error distribution and at any number of rows, where a test of the mean
        is an approximation that promotes too often for few, heavy-tailed rows;
      - a studentized bootstrap test of the metric (``studentized``: the mean of per-row
        absolute errors for mae, squared errors for rmse, whose order is the RMSE's). The rank
        test alone answers "is the typical row better?", not "is the metric better?": a
        challenger 10% better on 95% of rows and 2.9x worse on the rest (the same MAE, a worse
        RMSE) passes it every time. The percentile bootstrap of the metric, the earlier second
        test (``wilcoxon+bootstrap``), stopped that case only to 6.6% on 2,000 rows and 15% on
        100 at alpha 5%; the studentized one keeps it at its level (see ``studentized``).

      Either test alone gives up one of the two guarantees. The level: where the two models are
      interchangeable (the per-row differences symmetric about 0, whatever their distribution) the
      Wilcoxon test keeps alpha (exactly up to 50 rows, to scipy's normal approximation above), and an
      intersection-union test promotes no more often than the part that promotes least: at most alpha
      by construction, and below it (4.0% at 2,000 rows and 3.8% at 100 with normal errors, 3.0% and
      3.2% at 100 with t3 and skewed ones). Where only the metric is equal (the trade-off above), the
      studentized test alone stands in the way, and no test of a mean keeps its level over every
      distribution at a given n (Bahadur & Savage 1956): it is second-order accurate, and measured at
      its level there (see ``studentized``). With ``regression_metric: rmse`` the same trade-off is a
      challenger with a 9% worse RMSE whose squared-error differences put all of its loss on a few rows;
      on 100 rows a sample short of them looked better 6.1% of the time, until the studentized test
      stopped trusting a mean skewed towards the challenger's losses below Cochran's rule (see
      ``studentized``). Measured in
      ``benchmarks/promotion_gate.py`` (false promotion of interchangeable models with normal,
      t3 and skewed errors and of the same-MAE trade-off at 100 and 2,000 rows; power at a 5%
      lower MAE).
    * ``studentized``, ``wilcoxon``, ``bootstrap``: one test alone; ``wilcoxon+bootstrap``: the
      earlier default.

    The interval (``improvement_ci``) is the paired bootstrap's percentile interval of the
    metric's improvement in every case (``cfg.bootstrap_samples``, ``cfg.seed``).
    """
    metric = cfg.regression_metric
    if metric not in ("rmse", "mae"):
        raise ValueError(f"regression_metric must be rmse or mae, got {metric!r}")
    loss = cfg.regression_loss or ("squared" if metric == "rmse" else "abs")
    if loss not in ("abs", "squared"):
        raise ValueError(f"regression_loss must be abs or squared, got {loss!r}")
    alpha, min_effect = _alpha_and_effect(cfg)
    floor = float(cfg.regression_floor)
    samples = int(cfg.bootstrap_samples)
    if samples < 1:
        raise ValueError(f"bootstrap_samples must be >= 1, got {samples}")

    y = check_values(y_true, "y_true")
    n = len(y)
    chal = check_values(challenger_pred, "challenger_pred", n)
    champ = None if champion_pred is None else check_values(champion_pred, "champion_pred", n)

    chal_scores = {m: score_regression(m, y, chal) for m in REGRESSION_METRICS}
    chal_v = chal_scores[metric]
    ev: dict[str, Any] = {
        "task": "regression",
        "metric": metric,
        "higher_is_better": False,
        "n": n,
        "challenger": chal_v,
        "challenger_scores": chal_scores,
        "champion_scores": None,
        "alpha": alpha,
        "min_effect": min_effect,
        "floor": floor,
        "floor_metric": "r2",
        "row_error": loss,
    }

    # the absolute floor on R²
    r2 = chal_scores["r2"]
    ok = r2 >= floor
    mean_note = " (R² 0: as good as predicting the mean)" if floor == 0 else ""
    floor_text = (f"r2={_fmt(r2)} {'≥' if ok else '<'} floor={_fmt(floor)}{mean_note}"
                  + ("" if ok else ": below the absolute floor"))

    def compare() -> _Comparison:
        champ_scores = {m: score_regression(m, y, champ) for m in REGRESSION_METRICS}
        champ_v = champ_scores[metric]
        diff = chal_v - champ_v
        improvement = 0.0 - diff  # lower is better; 0.0 - x: no "-0.0000" for an exact copy
        found: dict[str, Any] = {"champion": champ_v, "champion_scores": champ_scores, "difference": diff,
                                 "improvement": improvement}
        same = np.isclose(chal, champ, rtol=TIE_RTOL, atol=TIE_RTOL * max(float(np.std(y)), 1e-12))
        d = row_errors(loss, y, champ) - row_errors(loss, y, chal)
        d[same] = 0.0
        boot = paired_bootstrap(regression_improvement_statistic(metric, y, champ, chal), n, samples, int(cfg.seed),
                                alpha)
        test = cfg.regression_test
        found["test_requested"] = test
        if test not in REGRESSION_TESTS:
            raise ValueError(f"regression_test must be one of {', '.join(REGRESSION_TESTS)}, got {test!r}")
        found.update(boot)  # the interval, whatever the test; "p_value" is set below
        p: dict[str, float] = {}
        detail = []
        if "wilcoxon" in test:
            res = wilcoxon_one_sided(d)
            found.update(statistic=res["statistic"], rows=res["rows"])
            p["wilcoxon"] = res["p_value"]
            r = res["rows"]
            detail.append(f"{r['challenger_better']} rows where the challenger errs less vs "
                          f"{r['champion_better']} where the champion does")
        if "studentized" in test:  # the metric's own loss: abs for mae, squared for rmse (MSE orders as RMSE)
            own = "abs" if metric == "mae" else "squared"
            dm = row_errors(own, y, champ) - row_errors(own, y, chal)
            dm[same] = 0.0
            res = studentized(dm, samples, int(cfg.seed) + 1, alpha)
            p["studentized"] = res["p_value"]
            if "rows_needed" in res:  # too skewed for a test of the mean on this many rows: not better
                found["rows_needed"] = res["rows_needed"]
                detail.append(res["note"])
        if "bootstrap" in test:
            p["bootstrap"] = boot["p_value"]
        found["test"] = "_and_".join(REGRESSION_TEST_NAMES[k] for k in p) + "_one_sided"
        found["p_value"] = max(p.values())  # an intersection-union test: every part must say better
        if len(p) > 1:
            found.update({f"p_{k}": v for k, v in p.items()})
            detail.append(", ".join(f"{k} p={v:.3g}" for k, v in p.items()))
        if "wilcoxon" in test or "studentized" in test:
            found["ci_method"] = f"paired bootstrap percentile of the {metric} improvement"
        found["ci_level"] = 1 - 2 * alpha
        lo, hi = found["improvement_ci"]
        found["difference_ci"] = [-hi, -lo]
        identical = bool(same.all())
        found["identical_predictions"] = identical
        return _Comparison(found, float(found["p_value"]), improvement, identical, (lo, hi),
                           f" ({'; '.join(detail)})" if detail else "")

    return _judge(cfg, ev, (ok, floor_text), None if champ is None else compare, guardrails, champion_drifted)
