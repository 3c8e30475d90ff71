"""The canary's sequential tests, valid at every look.

The canary looks again and again (every ``poll_s``); a fixed-sample test checked this often
would raise false alarms far above its nominal rate, so the two statistical guardrails are
sequential tests:

* **errors**: Wald's sequential probability ratio test. An error is a failed request
  (5xx) or, for the challenger, a request it failed that the champion then answered
  (model error, or input its schema rejects and the champion's accepts). Given that
  an error happened in an interval where the challenger served ``n_h`` and the champion
  ``n_c`` requests, under H0 (equal error rates) it is the challenger's with probability
  ``n_h / (n_h + n_c)``; under H1 (the challenger's rate is ``error_rate_ratio`` times the
  champion's) with ``R n_h / (R n_h + n_c)``. The log-likelihood ratio of the binomial
  counts per interval adds up; H0 is rejected (breach) when it crosses
  ``log((1 - beta) / alpha)``. In an interval where the champion served nothing (the
  100 % step) the challenger's errors are tested against the champion's rate measured
  earlier in the canary (one-sample binomial SPRT, rate smoothed by +0.5/+1).
  Neither scipy nor statsmodels ships an SPRT; the test is a running sum of binomial
  log-likelihood ratios (closed form, checked against ``scipy.stats.binom.logpmf``), so it
  is written here.
* **live accuracy** (where ``/feedback`` labels arrive): the mixture SPRT (mSPRT, Johari
  et al., "Always valid inference", 2017) on the difference of accuracies, normal
  approximation, normal mixing distribution with sd ``accuracy_tau``; its always-valid
  p-value is the running minimum of ``1 / Lambda``. A breach is p <= ``accuracy_alpha``
  with the challenger worse than the champion by more than ``accuracy_margin``.
  (No library implements the mSPRT either; it is one closed-form expression.)
* **live error** of a regression model (``MAEMSPRT``): the same mSPRT on the log of the ratio of
  the two versions' live mean absolute errors; a breach is p <= ``accuracy_alpha`` with the
  challenger's MAE over the champion's by more than ``mae_margin`` (relative).
"""

from __future__ import annotations

import math


class ErrorSPRT:
    """Wald's SPRT: H0 the challenger's error rate equals the champion's, H1 it is ``ratio`` times.

    Hand-written because neither scipy nor statsmodels provides an SPRT (statsmodels has
    fixed-sample proportion tests only); the log-likelihood ratio of binomial counts is the
    closed form in ``binomial_llr``. ``update`` takes the counts of one interval."""

    def __init__(self, ratio: float, alpha: float, beta: float):
        self.ratio = ratio
        self.upper = math.log((1 - beta) / alpha)  # reject H0: the challenger errs more
        self.lower = math.log(beta / (1 - alpha))  # accept H0 (reported, does not end a step)
        self.llr = 0.0
        self.champion_errors = 0
        self.champion_trials = 0

    @staticmethod
    def binomial_llr(k: int, n: int, p1: float, p0: float) -> float:
        """log [Bin(k; n, p1) / Bin(k; n, p0)]: the binomial coefficients cancel, leaving
        k log(p1/p0) + (n-k) log((1-p1)/(1-p0)) (equal to the difference of
        ``scipy.stats.binom.logpmf``, which the tests check, at a fraction of its cost)."""
        return k * math.log(p1 / p0) + (n - k) * math.log((1 - p1) / (1 - p0))

    def update(self, challenger_errors: int, challenger_trials: int, champion_errors: int, champion_trials: int):
        self.champion_errors += champion_errors
        self.champion_trials += champion_trials
        if challenger_trials <= 0:
            return self.llr
        r = self.ratio
        if champion_trials > 0:  # both served: which of them made each error?
            m = challenger_errors + champion_errors
            if m == 0:
                return self.llr
            p0 = challenger_trials / (challenger_trials + champion_trials)
            p1 = r * challenger_trials / (r * challenger_trials + champion_trials)
            self.llr += self.binomial_llr(challenger_errors, m, p1, p0)
        else:  # the challenger served everything: against the champion's rate measured earlier
            p0 = (self.champion_errors + 0.5) / (self.champion_trials + 1.0)
            p1 = min(r * p0, 0.999)
            if p1 > p0:
                self.llr += self.binomial_llr(challenger_errors, challenger_trials, p1, p0)
        return self.llr

    @property
    def rejected(self) -> bool:
        return self.llr >= self.upper

    @property
    def accepted(self) -> bool:
        return self.llr <= self.lower


def msprt_lambda(diff: float, var: float, tau: float) -> float:
    """Mixture likelihood ratio for a normal estimate ``diff`` (variance ``var``) of an effect
    whose null value is 0, with a N(0, tau^2) mixing distribution (Johari et al. 2017)."""
    if var <= 0:
        return 1.0
    t2 = tau * tau
    log_l = 0.5 * math.log(var / (var + t2)) + t2 * diff * diff / (2 * var * (var + t2))
    return math.exp(min(log_l, 700.0))


class AccuracyMSPRT:
    """Always-valid comparison of live accuracies (challenger minus champion)."""

    def __init__(self, tau: float, margin: float):
        self.tau, self.margin = tau, margin
        self.p_worse = 1.0  # always-valid p-value of "not worse by more than margin"
        self.p_better = 1.0  # ... of "not better" (evidence for the promotion)
        self.diff: float | None = None

    def update(self, k_h: int, f_h: int, k_c: int, f_c: int) -> None:
        if f_h <= 0 or f_c <= 0:
            return
        a_h, a_c = k_h / f_h, k_c / f_c
        s_h, s_c = (k_h + 0.5) / (f_h + 1.0), (k_c + 0.5) / (f_c + 1.0)  # keeps the variance > 0
        var = s_h * (1 - s_h) / f_h + s_c * (1 - s_c) / f_c
        self.diff = a_h - a_c
        worse = self.diff + self.margin  # < 0: worse by more than the margin
        if worse < 0:
            self.p_worse = min(self.p_worse, 1.0 / msprt_lambda(worse, var, self.tau))
        if self.diff > 0:
            self.p_better = min(self.p_better, 1.0 / msprt_lambda(self.diff, var, self.tau))


class MAEMSPRT:
    """Always-valid comparison of live mean absolute errors (regression): challenger vs champion.

    The effect is ``theta = log(MAE_h / MAE_c)``; each version's MAE and the variance of its
    absolute errors come from three running sums per version (labelled rows, sum of ``|e|``,
    sum of ``e^2``: all the service keeps), and the estimate's variance from the delta method,
    ``var|e|_h / (n_h MAE_h^2) + var|e|_c / (n_c MAE_c^2)``. The mSPRT (``msprt_lambda``, N(0, tau^2)
    mixture) on that normal estimate gives always-valid p-values, as for accuracy.

    Why this test: in a canary each request is answered by one version, so the errors are two
    independent samples, not pairs (a paired test would need both predictions of every row); a
    fixed-sample two-sample test (scipy's Welch t or Mann-Whitney U) read at every poll would
    raise false alarms far above its level, the mSPRT stays valid at every look (under the normal
    approximation with a plug-in variance, as Johari et al.'s two-sample test, hence
    ``min_feedback`` labels before it speaks); and on the log of the ratio the margin and tau are
    relative, so one config means the same whatever the target's units (a price, a count of
    visits), and the log of a ratio of positive means is closer to normal than the ratio.
    Hand-written for the reason the accuracy test is: no library implements the mSPRT."""

    def __init__(self, tau: float, margin: float):
        self.tau, self.margin = tau, margin
        self.p_worse = 1.0  # always-valid p-value of "MAE not above the champion's x (1 + margin)"
        self.p_better = 1.0  # ... of "MAE not below the champion's"
        self.ratio: float | None = None  # MAE_h / MAE_c

    @staticmethod
    def log_ratio(n_h: int, abs_h: float, sq_h: float, n_c: int, abs_c: float, sq_c: float):
        """(log(MAE_h / MAE_c), its delta-method variance), or None when either has fewer than two
        labelled rows or a zero MAE."""
        if n_h < 2 or n_c < 2 or abs_h <= 0 or abs_c <= 0:
            return None
        out = []
        for n, a, q in ((n_h, abs_h, sq_h), (n_c, abs_c, sq_c)):
            mae = a / n
            var_abs = max(q / n - mae * mae, 0.0) * n / (n - 1)  # sample variance of |e|
            out.append((mae, var_abs / (n * mae * mae)))
        (m_h, v_h), (m_c, v_c) = out
        return math.log(m_h / m_c), v_h + v_c

    def update(self, n_h: int, abs_h: float, sq_h: float, n_c: int, abs_c: float, sq_c: float) -> None:
        """The canary's cumulative sums so far (each look replaces the estimate)."""
        est = self.log_ratio(n_h, abs_h, sq_h, n_c, abs_c, sq_c)
        if est is None:
            return
        theta, var = est
        self.ratio = math.exp(theta)
        worse = theta - math.log1p(self.margin)  # > 0: worse by more than the margin
        if worse > 0:
            self.p_worse = min(self.p_worse, 1.0 / msprt_lambda(worse, var, self.tau))
        if theta < 0:
            self.p_better = min(self.p_better, 1.0 / msprt_lambda(theta, var, self.tau))
