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
and where the champion re-weighted to them is significantly more accurate than as trained on
the batch (``crossfit_test``: each half of the rows re-weighted to the other half's shares, the
exact one-sided McNemar test at ``gate.alpha``): re-weighting changes what the champion serves,
so it passes a paired test, as a challenger does at the gate. Then the batch's class shares
(Laplace-smoothed: a class absent from the batch keeps a small share) are written on the
champion's version (mark ``prior_shares``) and ``Registry.load_predictor`` applies them to every
caller: the gate, the concept score of the next batch, the server at its next load. A batch whose
base rate is back within the test, or whose re-weighting does not pass it, clears
the mark. The batch is scored for concept drift before its shares are written, so each labelled
batch is predicted with the shares of the batches before it only (prequential). The gate scores
the champion re-weighted too, as it is served; its shares come from rows the gate does not score.
The compiled fast path applies the weights too.

Why: on seattle-weather in half-year batches (``benchmarks/drift_recovery.py --streams seattle``)
the class ``rain`` fell from 57 of 181 days in 2013H1 to 3 of 184 in 2013H2. The champion trained
on 2013H1 kept predicting rain in 2014H1 (accuracy 0.475); a challenger trained with 2013H2 would
have scored 0.834, but of 2013H2's own 184 rows only 6 were right by one of the two alone (5 to 1:
p = 0.11), so no paired test could promote it. Re-weighted to 2013H2's shares the same champion
scored 0.702 on 2014H1. In the loop the correction first took ratchet's prequential accuracy there
from 0.605 to 0.653 (all data: 0.700). Since the gate pairs a champion with the model it replaced
(``ratchet.promotion.out_of_time``) the challenger with 2013H2 is promoted without it, and the
correction, now behind a paired test, costs: 0.628 with it, 0.680 without (so it stays opt-in;
the benchmark's docstring has the figures per batch).
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
    # the paired test of the champion re-weighted against as trained on the batch's rows (``crossfit_test``:
    # {"rows", "trained", "reweighted", "reweighted_only", "trained_only", "p_value", "alpha"}); None: not
    # measured (no shift detected)
    test: dict | None = None
    correction: bool = True  # drift.prior_correction: False, the shift is reported and nothing is re-weighted

    @property
    def applied(self) -> bool:
        """Detected, the correction on, and the re-weighted champion significantly more accurate than as
        trained on the batch (the paired test at its alpha; not measured: applied)."""
        h = self.test or {}
        return self.correction and self.detected and (h.get("p_value") is None or h["p_value"] <= h["alpha"])

    def describe(self, batch_id: str) -> str | None:
        """The ingest's line on it (None: no shift)."""
        if not self.detected:
            return None
        head = f"prior shift (label base rate, Cramer's V {round(self.effect, 4)}): "
        if self.applied:
            return head + f"the champion's probabilities re-weighted to {batch_id}'s class shares"
        h = self.test or {}
        why = (" (reported only: drift.prior_correction is off)" if not self.correction else
               f" (not re-weighted: right on {h.get('reweighted_only')} rows re-weighted, {h.get('trained_only')} as "
               f"trained, p={h.get('p_value', 1.0):.3g} > {h.get('alpha')})")
        return (head + f"{batch_id}'s class shares {self.batch_shares} against the champion's training rows' "
                f"{self.train_shares}" + why)

    def to_dict(self) -> dict:
        return {"detected": self.detected, "applied": self.applied, "correction": self.correction,
                "p_value": self.p_value,
                "effect": round(self.effect, 4), "batch_shares": self.batch_shares,
                "train_shares": self.train_shares, "test": self.test}


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


def crossfit_test(proba: np.ndarray, truth: Sequence, classes: Sequence, train: Mapping[str, int], alpha: float,
                  seed: int = 0) -> dict:
    """Is the champion re-weighted to the batch's base rate more accurate on the batch than as trained?

    ``proba`` is the champion's (as trained) on the batch's labelled rows ``truth``. The rows are
    cut in two halves (seeded); each half is re-weighted to the OTHER half's class shares, so no
    row's own label informs its re-weighting (cross-fitting), and every row is scored. The
    champion never trained on a new batch, so each row is out of time for it. Then the exact
    one-sided McNemar test on the paired rows (a binomial test on the rows only one side gets
    right): re-weighting changes what the champion serves, so it must pass a paired test, as a
    challenger must at the gate (the rule before, "no less accurate on the batch's held-out
    rows", let a tie of 36 rows change what was served). On seattle-weather the test does not
    make the correction pay: ``benchmarks/drift_recovery.py --streams seattle --peers ratchet``
    with ``--prior-correction`` scored 0.628 against 0.680 without it (the correction stays
    opt-in); the re-weighted first champion, significantly better on 2013H1 itself, then
    blocked the challenger trained on 2013H1 (9 rows to 3 on its held-out rows, p = 0.073), which
    would have scored 0.717 on 2013H2 where the re-weighted champion scored 0.418."""
    from scipy.stats import binomtest

    keys = [str(c) for c in classes]
    truth = np.asarray([str(t) for t in truth])
    proba = np.asarray(proba, dtype=np.float64)
    half = np.random.default_rng(seed).permutation(len(truth)) % 2 == 1
    weighted = np.empty_like(proba)
    for side in (half, ~half):
        other = class_counts(pd.Series(truth[~side]), keys)
        target = dict(zip(keys, shares(other, keys), strict=True))
        weighted[side] = reweight(proba[side], prior_weights(train, target, keys))
    names = np.array(keys)
    trained_ok, weighted_ok = names[proba.argmax(1)] == truth, names[weighted.argmax(1)] == truth
    b = int(np.count_nonzero(weighted_ok & ~trained_ok))
    c = int(np.count_nonzero(trained_ok & ~weighted_ok))
    p = float(binomtest(b, b + c, 0.5, alternative="greater").pvalue) if b + c else 1.0
    return {"rows": len(truth), "trained": float(trained_ok.mean()) if len(truth) else None,
            "reweighted": float(weighted_ok.mean()) if len(truth) else None,
            "reweighted_only": b, "trained_only": c, "p_value": p, "alpha": alpha}
