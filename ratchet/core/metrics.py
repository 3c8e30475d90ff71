"""Metrics of a classifier's probabilities against true labels, and of a regressor's
predictions against true values, with the input checks the gate and training share: the
same number means the same thing at both ends of the loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

METRICS = ("accuracy", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
_HIGHER_IS_BETTER = {
    "accuracy": True, "f1": True, "roc_auc": True, "log_loss": False, "rmse": False, "mae": False, "r2": True,
}

# Probabilities may carry float noise (float32 softmax); beyond these they are wrong.
_PROBA_RANGE_TOL = 1e-6
_PROBA_SUM_TOL = 1e-3
# --------------------------------------------------------------------- metrics
def higher_is_better(metric: str) -> bool:
    """True for accuracy, f1, roc_auc, r2; False for log_loss, rmse, mae."""
    try:
        return _HIGHER_IS_BETTER[metric]
    except KeyError:
        raise ValueError(
            f"unknown metric {metric!r}; expected one of {list(METRICS)} (classification) "
            f"or {list(REGRESSION_METRICS)} (regression)"
        ) from None


def check_classes(classes: Sequence[Any]) -> int:
    try:
        k = len(classes)
    except TypeError:
        raise ValueError("classes must be a sequence of class labels") from None
    if k < 2:
        raise ValueError(f"classes needs at least two labels, got {k}")
    return k


def check_y(y_true: Any, k: int) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if y.size == 0:
        raise ValueError("y_true is empty: the gate needs at least one evaluation row")
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    elif y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ValueError("y_true contains NaN or infinite values")
        if not np.all(y == np.round(y)):
            raise ValueError("y_true must hold integer class indices 0..k-1, got non-integer floats")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iu":
        raise ValueError(f"y_true must hold integer class indices 0..k-1, got dtype {y.dtype}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= k:
        bad = lo if lo < 0 else hi
        raise ValueError(f"y_true holds class index {bad}, outside 0..{k - 1} ({k} classes)")
    return y.astype(np.int64, copy=False)


def check_proba(proba: Any, n: int, k: int, name: str) -> np.ndarray:
    try:
        p = np.asarray(proba, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} is not a numeric array: {exc}") from None
    if p.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n_rows, n_classes) array, got shape {p.shape}")
    if p.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if p.shape != (n, k):
        raise ValueError(
            f"{name} has shape {p.shape}, expected ({n}, {k}) = (len(y_true), len(classes))"
        )
    if not np.all(np.isfinite(p)):
        bad = int(np.count_nonzero(~np.isfinite(p).all(axis=1)))
        raise ValueError(f"{name} contains NaN or infinite values in {bad} row(s)")
    if p.min() < -_PROBA_RANGE_TOL or p.max() > 1 + _PROBA_RANGE_TOL:
        raise ValueError(f"{name} has values outside [0, 1] (min {p.min():.4g}, max {p.max():.4g})")
    sums = p.sum(axis=1)
    worst = float(np.max(np.abs(sums - 1.0)))
    if worst > _PROBA_SUM_TOL:
        raise ValueError(f"{name} rows must sum to 1 (worst row sums to {1.0 + worst:.4g} or less)")
    if p.min() < 0 or p.max() > 1 or worst > 1e-9:
        # Remove float noise (sklearn warns beyond ~1.5e-8). Only when needed: rescaling
        # exact probabilities would split tied scores and move roc_auc.
        p = np.clip(p, 0.0, 1.0)
        p = p / p.sum(axis=1, keepdims=True)
    return p


def check_metric_defined(metric: str, y: np.ndarray, k: int) -> None:
    if metric == "roc_auc":
        missing = sorted(set(range(k)) - set(np.unique(y).tolist()))
        if missing:
            raise ValueError(
                f"roc_auc is undefined: class index(es) {missing} never occur in y_true"
            )


def score_metric(metric: str, y: np.ndarray, p: np.ndarray, k: int) -> float:
    """Metric on already-validated arrays."""
    labels = list(range(k))
    if metric == "accuracy":
        # The share of rows whose argmax is the true class: exactly what
        # sklearn.metrics.accuracy_score returns (tests check it), without its ~2 ms
        # of re-validating inputs checked above; simulations call the gate thousands of times.
        return float(np.mean(p.argmax(axis=1) == y))
    if metric == "f1":
        pred = p.argmax(axis=1)
        if k == 2:
            return float(f1_score(y, pred, labels=labels, pos_label=k - 1, average="binary", zero_division=0))
        return float(f1_score(y, pred, labels=labels, average="macro", zero_division=0))
    if metric == "roc_auc":
        if k == 2:
            return float(roc_auc_score(y, p[:, k - 1]))
        return float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels))
    if metric == "log_loss":
        return float(log_loss(y, p, labels=labels))
    raise ValueError(f"unknown metric {metric!r}; expected one of {list(METRICS)}")


def metric_value(metric: str, y_true: Any, proba: Any, classes: Sequence[Any]) -> float:
    """``metric`` of predicted probabilities ``proba`` (n, k) against class indices ``y_true``.

    f1 is binary with positive class ``classes[-1]`` for two classes, macro otherwise;
    roc_auc is binary, or one-vs-rest macro for more classes.
    """
    higher_is_better(metric)
    k = check_classes(classes)
    y = check_y(y_true, k)
    p = check_proba(proba, len(y), k, "proba")
    check_metric_defined(metric, y, k)
    return score_metric(metric, y, p, k)


# --------------------------------------------------------------------- regression
def check_values(values: Any, name: str, n: int | None = None) -> np.ndarray:
    """``values`` as a finite 1-D float64 array (of length ``n`` when given)."""
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} is not a numeric array: {exc}") from None
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one number per row), got shape {v.shape}")
    if v.size == 0:
        raise ValueError(f"{name} is empty: the gate needs at least one evaluation row")
    if n is not None and len(v) != n:
        raise ValueError(f"{name} has {len(v)} rows, expected {n} = len(y_true)")
    if not np.all(np.isfinite(v)):
        bad = int(np.count_nonzero(~np.isfinite(v)))
        raise ValueError(f"{name} contains NaN or infinite values in {bad} row(s)")
    return v


def score_regression(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    """Regression metric on already-validated arrays (scikit-learn's definitions)."""
    if metric == "rmse":
        return float(root_mean_squared_error(y, pred))
    if metric == "mae":
        return float(mean_absolute_error(y, pred))
    if metric == "r2":
        # sklearn's force_finite: 1.0 for a perfect fit of a constant target, else 0.0 there
        return float(r2_score(y, pred))
    raise ValueError(f"unknown regression metric {metric!r}; expected one of {list(REGRESSION_METRICS)}")


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """RMSE, MAE and R² of predictions ``y_pred`` against true values ``y_true``."""
    y = check_values(y_true, "y_true")
    pred = check_values(y_pred, "y_pred", len(y))
    return {m: score_regression(m, y, pred) for m in REGRESSION_METRICS}
