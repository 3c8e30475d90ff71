"""Concept drift: the champion's error on labelled data against its own held-out error.

A change in P(label | features) leaves feature profiles alone, so it is seen only where labels
are: each published batch (at ingest) and the live feedback windows (the monitor). Both are
scored with the champion and tested, one sample after another, against the error the champion
had on its held-out rows.

Why a per-sample test with alpha spending rather than river's ADWIN/PageHinkley/DDM: a batch is
hundreds of labelled rows at once, so one batch alone has the power to show a change; the test
compares with the champion's *held-out* error (river's detectors learn their reference from the
start of the stream they watch, which a freshly promoted champion does not have); and it keeps
no state: a batch's verdict follows from its score and the champion's record, so ingest runs in
separate processes need no shared detector and every verdict can be recomputed from the commit
metadata. The i-th sample tested against one champion gets ``alpha * 6 / (pi^2 i^2)``, shared
(Bonferroni) between the sample alone and the i suffixes it may be pooled into: these sum to at
most ``alpha`` over any number of samples, so ``drift.concept_alpha`` bounds the chance of any
false alarm over the champion's whole life. The test itself (statsmodels' two-sample proportion
test; a one-sample t-test on squared errors for regression) treats the held-out figure as a
sample too, not as the truth.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ratchet.core.config import DriftConfig
from ratchet.core.schema import Schema
from ratchet.data.concept_checks import ConceptCheck


@dataclass(frozen=True)
class Baseline:
    """The champion's held-out figure: error rate (classification) or MSE (regression)."""

    version: str
    rows: int
    error: float
    regression: bool = False


@dataclass(frozen=True)
class Sample:
    """One labelled sample scored by the champion: a batch, or a live feedback window.
    ``error``: share of rows wrong, or mean squared error; ``spread``: the standard deviation
    of the squared errors (regression only)."""

    label: str
    rows: int
    error: float
    spread: float = 0.0


def spent_alpha(alpha: float, index: int) -> float:
    """The level of the ``index``-th test (1-based): alpha * 6/(pi^2 i^2), summing to alpha."""
    return alpha * 6.0 / (math.pi**2 * index**2)


def baseline_from(version: str, metrics: dict[str, float], regression: bool) -> Baseline | None:
    """The held-out figure from a training run's metrics (``test_accuracy``/``test_rmse``, ``test_rows``)."""
    rows = int(metrics.get("test_rows") or 0)
    key = "test_rmse" if regression else "test_accuracy"
    if rows <= 0 or metrics.get(key) is None:
        return None
    value = float(metrics[key])
    return Baseline(str(version), rows, value**2 if regression else 1.0 - value, regression)


def score_frame(predictor: Any, frame: pd.DataFrame, schema: Schema, label: str) -> Sample:
    """Score labelled rows with ``predictor``: share wrong, or mean squared error."""
    from ratchet.training.model.preprocess import target_values

    y = target_values(frame[schema.target.name], schema.target)
    if schema.target.is_regression:
        sq = (np.asarray(predictor.predict(frame), dtype=float).ravel() - y) ** 2
        return Sample(label, len(y), float(sq.mean()), float(sq.std(ddof=1)) if len(sq) > 1 else 0.0)
    wrong = np.asarray(predictor.predict_proba(frame)).argmax(axis=1) != y
    return Sample(label, len(y), float(wrong.mean()))


def p_value(sample: Sample, base: Baseline, cfg: DriftConfig) -> float:
    """One-sided: is the sample's error above the held-out error (plus ``concept_min_drop``)?"""
    if sample.rows <= 1:
        return 1.0
    if base.regression:  # squared errors' mean against the held-out MSE raised by min_drop
        bound = base.error * (1.0 + cfg.concept_min_drop)
        if sample.spread <= 0:
            return 0.0 if sample.error > bound else 1.0
        t = (sample.error - bound) / (sample.spread / math.sqrt(sample.rows))
        from scipy import stats

        return float(stats.t.sf(t, df=sample.rows - 1))
    from statsmodels.stats.proportion import test_proportions_2indep

    k, k0 = round(sample.error * sample.rows), round(base.error * base.rows)
    if k / sample.rows - k0 / base.rows <= cfg.concept_min_drop:
        return 1.0
    with warnings.catch_warnings():  # it also computes a ratio, which divides by zero when k0 == 0
        warnings.simplefilter("ignore", RuntimeWarning)
        res = test_proportions_2indep(
            k, sample.rows, k0, base.rows, value=cfg.concept_min_drop, compare="diff", alternative="larger"
        )
    return float(res.pvalue) if np.isfinite(res.pvalue) else 1.0


def onset_index(samples: list[Sample], base: Baseline) -> int:
    """Where the change began: the suffix of ``samples`` whose pooled excess error over the
    held-out error is largest in z units (the CUSUM change-point estimate, written out here
    because river's detectors say when they fire, not where the change started)."""
    best, best_z = len(samples) - 1, -math.inf
    excess = rows = 0.0
    for j in range(len(samples) - 1, -1, -1):
        excess += samples[j].rows * (samples[j].error - base.error)
        rows += samples[j].rows
        z = excess / math.sqrt(rows)
        if z > best_z:
            best, best_z = j, z
    return best


def pooled(samples: list[Sample], label: str) -> Sample:
    rows = sum(s.rows for s in samples)
    return Sample(label, rows, sum(s.rows * s.error for s in samples) / rows)


def check(history: list[Sample], new: Sample, base: Baseline, cfg: DriftConfig) -> ConceptCheck:
    """Test ``new``, the ``len(history)+1``-th sample this champion is tested on, alone and pooled
    with the samples since the estimated onset (small live windows gather evidence that way);
    the step's alpha is split over the ``index`` suffixes it could have picked (Bonferroni), so
    the sum over all steps still stays below ``concept_alpha``."""
    index = len(history) + 1
    samples = [*history, new]
    start = onset_index(samples, base)
    p = p_value(new, base, cfg)
    if start < len(history) and not base.regression:  # history keeps no spread of squared errors
        p = min(p, p_value(pooled(samples[start:], new.label), base, cfg))
    alpha = spent_alpha(cfg.concept_alpha, index) / index
    detected = p < alpha
    return ConceptCheck(
        base.version, new.label, new.rows, new.error, base.error, p, alpha, index, detected,
        samples[start].label if detected else None, base.regression,
    )
