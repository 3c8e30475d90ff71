"""Prior shift: the label's base rate moved, and the champion's probabilities follow it.

Under label shift (P(x | y) unchanged, P(y) moved) the Bayes-optimal classifier for the new
base rate is the old one with its probabilities re-weighted by the ratio of the class shares
and renormalised (Saerens, Latinne & Decaestecker 2002): p'(y | x) proportional to
p(y | x) * pi_new(y) / pi_train(y). No retraining and no new model: the champion stays, and so
does the gate's promise (a challenger replaces it only on a paired test); what moves is the
prior the champion's outputs are scaled to.

When: a labelled batch at ingest whose class counts (of the rows the training split does not
hold out) differ from the champion's training rows' by the drift test of the profiles (a
chi-square on the 2 x K table, p below ``drift.p_value``) with an effect of at least
``drift.min_effect`` (Cramer's V): at large n the effect decides, so the batch size does not;
and where the champion re-weighted to them is no less accurate than as trained on the batch's
held-out rows (a guard where P(x | y) moved too, or a class the champion barely saw gets a
large weight). Then the batch's class shares (Laplace-smoothed: a class absent from
the batch keeps a small share) are written on the champion's version (mark ``prior_shares``)
and ``Registry.load_predictor`` applies them to every caller: the gate, the concept score of the
next batch, the server at its next load. A batch whose base rate is back within the test clears
the mark. The batch is scored for concept drift before its shares are written, so each labelled
batch is predicted with the shares of the batches before it only (prequential). The gate scores
the champion re-weighted too, as it is served; its shares come from rows the gate does not score.
A re-weighted champion is served through its ``predict_proba`` (no compiled fast path).

Why: on seattle-weather in half-year batches (``benchmarks/drift_recovery.py --streams seattle``)
the class ``rain`` fell from 57 of 181 days in 2013H1 to 3 of 184 in 2013H2. The champion trained
on 2013H1 kept predicting rain in 2014H1 (accuracy 0.475); a challenger trained with 2013H2 would
have scored 0.834, but of 2013H2's own 184 rows only 6 were right by one of the two alone (5 to 1:
p = 0.11), so no paired test could promote it. Re-weighted to 2013H2's shares the same champion
scored 0.702 on 2014H1. In the loop, ratchet's prequential accuracy there went from 0.605 to 0.653
(all data: 0.700; the benchmark's docstring has the figures per batch).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ratchet.core.config import DriftConfig


def class_counts(labels: pd.Series, classes: Sequence) -> dict[str, int]:
    """Labelled rows per class (as strings, in ``classes`` order); missing labels left out."""
    known = labels.dropna().astype(str).value_counts()
    return {str(c): int(known.get(str(c), 0)) for c in classes}


def shares(counts: Mapping[str, int], classes: Sequence) -> np.ndarray:
    """Laplace-smoothed class shares in ``classes`` order: a class never seen keeps a small share,
    so a re-weighting never zeroes it for good."""
    v = np.array([float(counts.get(str(c), 0)) for c in classes])
    return (v + 1.0) / (v.sum() + len(v))


@dataclass(frozen=True)
class PriorCheck:
    """A labelled batch's class counts against the champion's training rows'."""

    detected: bool
    p_value: float
    effect: float  # Cramer's V of the 2 x K table
    batch_shares: dict[str, float]
    train_shares: dict[str, float]
    # the champion's accuracy on the batch's held-out rows as trained and re-weighted ({"rows", "trained",
    # "reweighted"}); None: not measured (no shift detected)
    held_out: dict | None = None
    correction: bool = True  # drift.prior_correction: False, the shift is reported and nothing is re-weighted

    @property
    def applied(self) -> bool:
        """Detected, the correction on, and the re-weighted champion no less accurate on the held-out
        rows (none: applied)."""
        h = self.held_out or {}
        return self.correction and self.detected and (h.get("reweighted") is None or h["reweighted"] >= h["trained"])

    def describe(self, batch_id: str) -> str | None:
        """The ingest's line on it (None: no shift)."""
        if not self.detected:
            return None
        head = f"prior shift (label base rate, Cramer's V {round(self.effect, 4)}): "
        if self.applied:
            return head + f"the champion's probabilities re-weighted to {batch_id}'s class shares"
        return (head + f"{batch_id}'s class shares {self.batch_shares} against the champion's training rows' "
                f"{self.train_shares}" + ("" if self.correction else " (reported only: drift.prior_correction is off)"))

    def to_dict(self) -> dict:
        return {"detected": self.detected, "applied": self.applied, "correction": self.correction,
                "p_value": self.p_value,
                "effect": round(self.effect, 4), "batch_shares": self.batch_shares,
                "train_shares": self.train_shares, "held_out": self.held_out}


def check_prior(train: Mapping[str, int], batch: Mapping[str, int], classes: Sequence, cfg: DriftConfig) -> PriorCheck:
    """Has the base rate moved? A chi-square test of the 2 x K table of class counts (classes
    neither side holds dropped) at ``cfg.p_value``, and Cramer's V at least ``cfg.min_effect``."""
    from scipy import stats

    keys = [str(c) for c in classes]
    table = np.array([[train.get(k, 0) for k in keys], [batch.get(k, 0) for k in keys]], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    n = table.sum()
    if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        p, effect = 1.0, 0.0
    else:
        res = stats.chi2_contingency(table, correction=False)
        p, effect = float(res.pvalue), float(np.sqrt(res.statistic / n))  # V = sqrt(chi2 / (n (min(2, K) - 1)))
    rounded = lambda s: {k: round(float(v), 4) for k, v in zip(keys, s, strict=True)}  # noqa: E731
    return PriorCheck(p < cfg.p_value and effect >= cfg.min_effect, p, effect,
                      rounded(shares(batch, classes)), rounded(shares(train, classes)))


def prior_weights(train: Mapping[str, int], target_shares: Mapping[str, float], classes: Sequence) -> np.ndarray:
    """Per class (``classes`` order) the factor pi_new / pi_train a probability is multiplied by."""
    new = np.array([float(target_shares[str(c)]) for c in classes])
    return new / shares(train, classes)


def reweight(proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Probabilities (n, k) re-weighted by ``weights`` and renormalised (Saerens et al. 2002)."""
    out = np.asarray(proba, dtype=np.float64) * weights
    return (out / out.sum(axis=1, keepdims=True)).astype(np.asarray(proba).dtype, copy=False)


def dumps(target_shares: Mapping[str, float] | None) -> str:
    """The mark's text: the shares as JSON, or ``{}`` for none (a cleared mark)."""
    return json.dumps(dict(target_shares or {}), separators=(",", ":"))


def loads(text: str | None) -> dict[str, float]:
    return json.loads(text) if text else {}
