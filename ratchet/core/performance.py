"""Performance without labels: calibrated confidence and confidence-based performance
estimation (CBPE, as NannyML names it).

A classifier's top-label confidence (the largest class probability of a row) is calibrated
on held-out rows at training (the validation and test rows): a regression of "the predicted
class was right" on the confidence (top-label calibration, rather than temperature scaling: it
needs no logits, works the same for two or many classes and for the confidences the service
already records). Three maps compete, isotonic (what NannyML fits), Platt's logistic and none,
and the one with the least calibration error out of sample (cross-fitted between the two sets)
is kept (``Calibration.select``). Once calibrated, a row's confidence is the
probability that its prediction is right, so over a window of unlabelled rows

* the expected accuracy is the mean calibrated confidence, with standard deviation
  ``sqrt(sum c (1 - c)) / n`` (each row a Bernoulli trial of its own probability);
* for two classes, the expected confusion matrix: a row predicted positive adds ``c`` to
  the true positives and ``1 - c`` to the false positives, a row predicted negative ``c`` to
  the true negatives and ``1 - c`` to the false negatives; the F1 estimate is that matrix's F1.

This holds under covariate shift (inputs move, ``P(y | x)`` does not) and fails under concept
drift (the same inputs now mean another label), which no estimate without labels can see:
``benchmarks/performance_estimation.py`` shows both.

Regression: not estimated. Direct loss estimation (NannyML's DLE) fits a second model on
the held-out absolute errors and is only as good as that model's extrapolation to the
shifted inputs; the service reports live MAE/RMSE once labels arrive instead.

Plain numpy at serving time: :class:`Calibration` is two arrays and ``np.interp``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

ECE_BINS = 10


@dataclass(frozen=True)
class Calibration:
    """A monotone map from top-label confidence to the probability that the prediction is
    right: piecewise linear through (``x``, ``y``), constant beyond the ends."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    rows: int = 0  # held-out rows it was fitted on
    ece_raw: float = float("nan")  # expected calibration error of the raw confidence on them
    # of the calibrated confidence out of sample: cross-fitted between the validation and test rows
    # (``ratchet.training.search.calibrate``); NaN until measured (in-sample it is ~0, meaningless)
    ece: float = float("nan")
    method: str = "isotonic"  # isotonic | platt | identity (``select``: the one best out of sample)

    @classmethod
    def fit(cls, confidence: np.ndarray, correct: np.ndarray, method: str = "isotonic") -> Calibration:
        """``correct`` (0/1) regressed on ``confidence``: isotonic (scikit-learn's pool-adjacent-
        violators rather than a hand-written one), platt (a logistic regression on the confidence's
        logit: two parameters, smooth), or identity (the raw confidence)."""
        conf = np.asarray(confidence, dtype=float)
        hit = np.asarray(correct, dtype=float)
        if len(conf) == 0:
            raise ValueError("calibration needs at least one held-out row")
        if method == "identity" or len(np.unique(hit)) < 2:
            xs, ys, method = np.array([0.0, 1.0]), np.array([0.0, 1.0]), "identity"
        elif method == "platt":
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1e6).fit(_logit(conf).reshape(-1, 1), hit.astype(int))
            xs = np.linspace(0.0, 1.0, 201)
            ys = lr.predict_proba(_logit(xs).reshape(-1, 1))[:, 1]
        else:
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(conf, hit)
            xs, ys = iso.X_thresholds_, iso.y_thresholds_
        return cls(tuple(float(v) for v in xs), tuple(float(v) for v in ys), rows=len(conf),
                   ece_raw=expected_calibration_error(conf, hit), method=method)

    @classmethod
    def select(cls, parts: list[tuple[np.ndarray, np.ndarray]]) -> Calibration:
        """The method whose calibration error is least out of sample, cross-fitted between the
        ``parts`` (``(confidence, correct)`` of each held-out set: fitted on one, scored on the
        others), refitted on them all; its ``ece`` is that cross-fitted error. Isotonic regression
        follows every step of its rows and, where identical rows land in one set together (rows
        split by content), those steps do not carry to the other: a smooth map or none then wins."""
        conf, hit = (np.concatenate(x) for x in zip(*parts, strict=True))
        scores = {}
        for method in ("identity", "platt", "isotonic"):
            err = 0.0
            for i, (c, h) in enumerate(parts):
                rest = [p for j, p in enumerate(parts) if j != i]
                fitted = cls.fit(*(np.concatenate(x) for x in zip(*rest, strict=True)), method=method)
                err += len(c) * expected_calibration_error(fitted.apply(c), h)
            scores[method] = err / len(conf)
        best = min(scores, key=scores.get)
        # ece_raw scored the same way (per set, with its bins) as ece: the two compare
        return replace(cls.fit(conf, hit, method=best), ece=scores[best], ece_raw=scores["identity"])

    def apply(self, confidence: np.ndarray) -> np.ndarray:
        conf = np.asarray(confidence, dtype=float)
        if not self.x:
            return conf
        return np.interp(conf, self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        return {"x": list(self.x), "y": list(self.y), "rows": self.rows, "ece_raw": self.ece_raw, "ece": self.ece,
                "method": self.method}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Calibration | None:
        if not d:
            return None
        return cls(tuple(float(v) for v in d["x"]), tuple(float(v) for v in d["y"]), int(d.get("rows", 0)),
                   float(d.get("ece_raw", float("nan"))), float(d.get("ece", float("nan"))),
                   str(d.get("method", "isotonic")))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the row-weighted mean, over equal-width confidence bins, of |accuracy - mean confidence|."""
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=float)
    if len(conf) == 0:
        return float("nan")
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(idx):
        m = idx == b
        total += m.sum() * abs(hit[m].mean() - conf[m].mean())
    return float(total / len(conf))


@dataclass
class EstimateAccumulator:
    """Sums over rows of calibrated confidences, chunk by chunk (a batch scored in pieces, a
    live window); ``positive``: the index of the positive class for the binary F1 (None:
    accuracy only)."""

    positive: int | None = None
    n: int = 0
    correct: float = 0.0  # sum of c
    variance: float = 0.0  # sum of c (1 - c)
    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, calibrated: np.ndarray, predicted: np.ndarray | None = None) -> None:
        """``calibrated``: each row's calibrated confidence; ``predicted``: each row's predicted
        class index (for F1)."""
        c = np.asarray(calibrated, dtype=float)
        self.n += len(c)
        self.correct += float(c.sum())
        self.variance += float((c * (1 - c)).sum())
        if self.positive is not None and predicted is not None:
            pos = np.asarray(predicted) == self.positive
            self.tp += float(c[pos].sum())
            self.fp += float((1 - c[pos]).sum())
            self.fn += float((1 - c[~pos]).sum())

    def result(self) -> PerformanceEstimate | None:
        if self.n == 0:
            return None
        acc = self.correct / self.n
        sd = math.sqrt(self.variance) / self.n
        f1 = None
        if self.positive is not None:
            denom = 2 * self.tp + self.fp + self.fn
            f1 = 2 * self.tp / denom if denom > 0 else 0.0
        return PerformanceEstimate(rows=self.n, accuracy=acc, accuracy_sd=sd, f1=f1)


@dataclass(frozen=True)
class PerformanceEstimate:
    """The estimated accuracy (and F1 for two classes) of ``rows`` unlabelled rows; ``accuracy_sd``
    the estimate's own sampling sd (what a window's realised accuracy scatters by around it)."""

    rows: int
    accuracy: float
    accuracy_sd: float
    f1: float | None = None
    method: str = "cbpe (isotonic top-label calibration)"

    def to_dict(self) -> dict[str, Any]:
        out = {"rows": self.rows, "accuracy": round(self.accuracy, 6), "accuracy_sd": round(self.accuracy_sd, 6),
               "method": self.method}
        if self.f1 is not None:
            out["f1"] = round(self.f1, 6)
        return out


def positive_index(classes: list | tuple) -> int | None:
    """The positive class's index for the binary F1 (``classes[-1]``, as ``ratchet.core.metrics``);
    None for more than two classes (accuracy only)."""
    return len(classes) - 1 if len(classes) == 2 else None


def estimate(proba: np.ndarray, calibration: Calibration | None, classes: list | tuple) -> PerformanceEstimate | None:
    """CBPE of the rows whose class probabilities are ``proba`` (n, k). Without a calibration
    the raw confidence is used (``method`` says so)."""
    proba = np.asarray(proba, dtype=float)
    acc = EstimateAccumulator(positive_index(classes))
    conf = proba.max(axis=1)
    acc.add(calibration.apply(conf) if calibration is not None else conf, proba.argmax(axis=1))
    result = acc.result()
    if result is not None and calibration is None:
        result = PerformanceEstimate(result.rows, result.accuracy, result.accuracy_sd, result.f1,
                                     method="cbpe (uncalibrated confidence)")
    return result


def estimated_drop(reference: float, est: PerformanceEstimate, z: float = 3.0) -> bool:
    """True when ``est.accuracy`` is below ``reference`` (e.g. the held-out accuracy) by more than
    ``z`` of the estimate's own sd: a drop beyond what sampling explains."""
    return reference - est.accuracy > z * max(est.accuracy_sd, 1e-9)


def window_estimate(current: dict[str, Any], previous: dict[str, Any] | None = None) -> PerformanceEstimate | None:
    """The estimate over the rows between two reads of a service's cumulative sums (``/stats``
    per version: ``estimated_rows``, ``estimated_correct``, ``estimated_variance``); from the
    start when ``previous`` is None or its counts are larger (the service restarted since)."""
    keys = ("estimated_rows", "estimated_correct", "estimated_variance")
    cur = [float(current.get(k) or 0) for k in keys]
    prev = [float((previous or {}).get(k) or 0) for k in keys]
    if prev[0] > cur[0]:
        prev = [0.0, 0.0, 0.0]
    n, correct, variance = (c - p for c, p in zip(cur, prev, strict=True))
    if n < 1:
        return None
    return PerformanceEstimate(rows=int(round(n)), accuracy=correct / n, accuracy_sd=math.sqrt(max(variance, 0.0)) / n)
