"""Sliced evaluation: a challenger better on average must not be worse for one group.

With ``gate.slices: [column, ...]`` the held-out rows are cut by each value of each listed
column (a numeric column with more than ``gate.slice_bins`` distinct values into that many
quantile bins; missing values as a slice of their own). On each slice with at least
``gate.slice_min_rows`` rows, a one-sided paired test asks whether the challenger is worse,
on per-row losses of the same rows:

* 0/1 losses (classification): the exact McNemar test, a binomial test on the rows where
  exactly one model errs, as the main gate does (``test="mcnemar"``);
* any other loss, e.g. absolute errors (regression): the Wilcoxon signed-rank test on the
  paired differences, zero differences dropped as McNemar drops the concordant rows
  (``test="wilcoxon"``).

The p-values of every tested slice form one family, adjusted with Holm's step-down
correction (statsmodels' ``multipletests``) at the gate's ``alpha``; a slice whose adjusted
p-value is at most ``alpha`` is significantly worse and keeps the champion. Pure functions
on arrays and the held-out frame, no I/O; the functions take losses, not predictions, so
they serve any task that can score a row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import binomtest, wilcoxon
from statsmodels.stats.multitest import multipletests

from ratchet.promotion.decision import GateDecision

SliceTest = Literal["mcnemar", "wilcoxon"]
_TESTS = {
    "mcnemar": ("mcnemar_exact_one_sided", "error_rate"),
    "wilcoxon": ("wilcoxon_signed_rank_one_sided", "mean_loss"),
}


def zero_one_loss(y: Any, proba: Any) -> np.ndarray:
    """1.0 where the most probable class is not ``y`` (class indices), else 0.0."""
    return (np.asarray(proba).argmax(axis=1) != np.asarray(y)).astype(np.float64)


def absolute_error(y: Any, predicted: Any) -> np.ndarray:
    return np.abs(np.asarray(predicted, dtype=np.float64) - np.asarray(y, dtype=np.float64))


def slices_of(frame: pd.DataFrame, column: str, bins: int) -> Iterator[tuple[str, np.ndarray]]:
    """(label, row mask) for each value of ``column``, or each quantile bin of a numeric one."""
    if column not in frame.columns:
        raise ValueError(f"gate.slices names {column!r}, not a column of the held-out rows "
                         f"({', '.join(map(str, frame.columns))})")
    s = frame[column]
    numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    if numeric and s.nunique() > bins:
        # quantiles of the held-out rows themselves; tied edges merge (duplicates="drop")
        s = pd.qcut(s, q=bins, duplicates="drop")
        labels = [(iv, f"{column} in ({iv.left:.4g}, {iv.right:.4g}]") for iv in s.cat.categories]
    else:
        values = sorted(s.dropna().unique(), key=lambda v: (0, float(v), "") if numeric else (1, 0.0, str(v)))
        labels = [(v, f"{column}={v}") for v in values]
    for value, label in labels:
        yield label, s.eq(value).fillna(False).to_numpy(dtype=bool)
    missing = s.isna().to_numpy()
    if missing.any():
        yield f"{column} is missing", missing


def paired_worse(champion: np.ndarray, challenger: np.ndarray, test: SliceTest) -> dict[str, Any]:
    """One-sided p-value that the challenger's losses are larger, on the same rows."""
    if test == "mcnemar":
        worse = int(np.count_nonzero(challenger > champion))  # rows only the challenger gets wrong
        better = int(np.count_nonzero(challenger < champion))
        m = worse + better
        p = float(binomtest(worse, m, 0.5, alternative="greater").pvalue) if m else 1.0
        return {"p_value": p, "discordant": {"challenger_only_wrong": worse, "champion_only_wrong": better}}
    d = challenger - champion
    nonzero = int(np.count_nonzero(d))
    p = float(wilcoxon(d, alternative="greater", zero_method="wilcox").pvalue) if nonzero else 1.0
    return {"p_value": p, "nonzero_differences": nonzero}


@dataclass
class SliceCheck:
    """Every slice: ``tested`` (rows, both models' mean loss, difference, p-value, Holm-adjusted
    p-value, worse or not) and ``skipped`` (under ``min_rows``)."""

    test: str
    metric: str
    alpha: float
    min_rows: int
    bins: int
    tested: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def worse(self) -> list[dict[str, Any]]:
        return [s for s in self.tested if s["worse"]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test, "metric": self.metric, "lower_is_better": True, "correction": "holm",
            "alpha": self.alpha, "min_rows": self.min_rows, "bins": self.bins,
            "tested": self.tested, "skipped": self.skipped, "worse": [s["slice"] for s in self.worse],
        }


def check_slices(
    frame: pd.DataFrame,
    losses_champion: Any,
    losses_challenger: Any,
    cfg: Any,
    *,
    test: SliceTest = "mcnemar",
) -> SliceCheck:
    """Test every slice of ``frame`` (the held-out rows, in the losses' order) named by
    ``cfg.slices`` (a ``GateConfig``: also ``slice_min_rows``, ``slice_bins``, ``alpha``)."""
    champ = np.asarray(losses_champion, dtype=np.float64)
    chal = np.asarray(losses_challenger, dtype=np.float64)
    if not len(champ) == len(chal) == len(frame):
        raise ValueError(f"losses of {len(champ)} and {len(chal)} rows for a frame of {len(frame)} rows")
    name, metric = _TESTS[test]
    out = SliceCheck(name, metric, float(cfg.alpha), int(cfg.slice_min_rows), int(cfg.slice_bins))
    for column in cfg.slices:
        for label, mask in slices_of(frame, column, out.bins):
            rows = int(mask.sum())
            if rows < out.min_rows:
                out.skipped.append({"column": column, "slice": label, "rows": rows})
                continue
            c, h = float(champ[mask].mean()), float(chal[mask].mean())
            out.tested.append({"column": column, "slice": label, "rows": rows, "champion": c,
                               "challenger": h, "difference": h - c, **paired_worse(champ[mask], chal[mask], test)})
    if out.tested:
        reject, adjusted, _, _ = multipletests([s["p_value"] for s in out.tested], alpha=out.alpha, method="holm")
        for s, r, p in zip(out.tested, reject, adjusted, strict=True):
            s.update(p_adjusted=float(p), worse=bool(r))
    return out


def score_slices(
    frame: pd.DataFrame, y: Any, champion_output: Any, challenger_output: Any, cfg: Any, *, regression: bool
) -> SliceCheck:
    """``check_slices`` on the models' outputs: class probabilities (0/1 losses, McNemar) or,
    for a regression target, predicted values (absolute errors, Wilcoxon)."""
    loss, test = (absolute_error, "wilcoxon") if regression else (zero_one_loss, "mcnemar")
    return check_slices(frame, loss(y, champion_output), loss(y, challenger_output), cfg, test=test)


def with_slices(decision: GateDecision, check: SliceCheck) -> GateDecision:
    """The gate's decision with the slices in its evidence: any slice significantly worse
    turns it into ``keep``, with a reason naming the slice."""
    evidence = decision.evidence.with_(slices=check.to_dict(),
                                       checks={**decision.evidence.checks, "slices": not check.worse})
    skipped = f", {len(check.skipped)} skipped under {check.min_rows} rows" if check.skipped else ""
    if not check.worse:
        reason = f"no slice significantly worse ({len(check.tested)} tested, Holm-adjusted{skipped})"
        return replace(decision, reasons=[*decision.reasons, reason], evidence=evidence)
    failed = [
        f"challenger significantly worse on slice {s['slice']} ({s['rows']} rows): {check.metric} "
        f"{s['challenger']:.4f} vs {s['champion']:.4f}, Holm-adjusted p={s['p_adjusted']:.3g} "
        f"≤ alpha={check.alpha:g}"
        for s in check.worse
    ]
    return replace(decision, decision="keep", reasons=[*failed, *decision.reasons], evidence=evidence)
