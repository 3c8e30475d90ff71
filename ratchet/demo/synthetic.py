"""A synthetic credit-risk-like stream for the demo and the tests.

Each batch is a table of applicant features and a binary label ``default``
(0/1) drawn from a known rule: ``P(default) = sigmoid(k * score)`` where
``score`` is linear in standardized features (standardized with fixed
population constants, never batch statistics, so the rule is the same in
every batch). The label noise is the Bernoulli draw itself; a model that
learns the rule reaches about 87% accuracy.

Two kinds of drift can be switched on from a given batch index:

* **data drift** (``data_drift_at``): the feature distributions move, income
  up by ``shift`` standard deviations, age down by ``shift`` standard
  deviations, and more applicants rent. The labelling rule is unchanged, so
  an old model still works (roughly), but the profiles differ.
* **concept drift** (``concept_drift_at``): the labelling rule changes: debt
  ratio and income swap roles, credit lines and employment start to matter,
  late payments stop mattering. A model fitted to the old rule drops to well
  under 65% accuracy; a model fitted to new data alone gets back to ~85%.

Classes stay between 30% and 70% positives in every combination.
Batches are deterministic for a given ``(seed, batch_index)``.

Nothing else in ratchet depends on these column names: this module is only
the demo's data source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DEMO_TARGET = "default"

NUMERIC_FEATURES = [
    "age",
    "income",
    "debt_ratio",
    "credit_lines",
    "late_payments",
    "employment_years",
]
CATEGORICAL_FEATURES = ["home_ownership", "purpose"]
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES

_HOME = ["rent", "mortgage", "own"]
_HOME_P = [0.40, 0.40, 0.20]
_HOME_P_DRIFT = [0.60, 0.30, 0.10]
_PURPOSE = ["debt_consolidation", "car", "home_improvement", "education", "business"]
_PURPOSE_P = [0.35, 0.20, 0.15, 0.15, 0.15]

# Population constants (before data drift) used to standardize features in the rule.
_AGE_MU, _AGE_SD = 42.0, 12.0
_LOGINC_MU, _LOGINC_SD = np.log(52_000.0), 0.45
_INC_LO, _INC_HI = 8_000.0, 250_000.0
_DEBT_A, _DEBT_B = 2.0, 4.0
_DEBT_MU, _DEBT_SD = 1 / 3, 0.178
_LINES_LAM = 6.0
_LATE_LAM = 0.8
_EMP_MU, _EMP_SD = 6.5, 4.6

# Sharpness of the rule: larger means less label noise (higher achievable accuracy).
_K = 1.7


def _rng(seed: int, batch_index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(batch_index), 0x5A7C])


def _features(rng: np.random.Generator, rows: int, drifted: bool, shift: float) -> pd.DataFrame:
    age_mu = _AGE_MU - (shift * _AGE_SD if drifted else 0.0)
    loginc_mu = _LOGINC_MU + (shift * _LOGINC_SD if drifted else 0.0)
    age = np.clip(np.round(rng.normal(age_mu, _AGE_SD, rows)), 18, 90).astype(int)
    # top- and bottom-coded, as incomes in survey data often are; keeps the tail light
    # enough that a schema inferred from one batch accepts the next ones
    income = np.round(np.clip(np.exp(rng.normal(loginc_mu, _LOGINC_SD, rows)), _INC_LO, _INC_HI), -1)
    debt_ratio = np.round(rng.beta(_DEBT_A, _DEBT_B, rows), 4)
    credit_lines = rng.poisson(_LINES_LAM, rows).astype(int)
    late_payments = rng.poisson(_LATE_LAM, rows).astype(int)
    employment_years = np.round(np.minimum(rng.gamma(2.0, 3.25, rows), age - 18.0), 1)
    home = rng.choice(_HOME, rows, p=_HOME_P_DRIFT if drifted else _HOME_P)
    purpose = rng.choice(_PURPOSE, rows, p=_PURPOSE_P)
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "debt_ratio": debt_ratio,
            "credit_lines": credit_lines,
            "late_payments": late_payments,
            "employment_years": employment_years,
            "home_ownership": home,
            "purpose": purpose,
        }
    )


def _score(df: pd.DataFrame, concept: int) -> np.ndarray:
    """Linear risk score on fixed-standardized features; ``concept`` 0 is the old rule, 1 the new."""
    z_age = (df["age"].to_numpy() - _AGE_MU) / _AGE_SD
    z_inc = (np.log(df["income"].to_numpy()) - _LOGINC_MU) / _LOGINC_SD
    z_debt = (df["debt_ratio"].to_numpy() - _DEBT_MU) / _DEBT_SD
    z_lines = (df["credit_lines"].to_numpy() - _LINES_LAM) / np.sqrt(_LINES_LAM)
    z_late = (df["late_payments"].to_numpy() - _LATE_LAM) / np.sqrt(_LATE_LAM)
    z_emp = (df["employment_years"].to_numpy() - _EMP_MU) / _EMP_SD
    home = df["home_ownership"].to_numpy()
    purpose = df["purpose"].to_numpy()
    if concept == 0:
        s = 1.6 * z_debt + 1.3 * z_late - 1.3 * z_inc - 0.7 * z_age - 0.4 * z_emp
        s += np.where(home == "rent", 0.5, 0.0) - np.where(home == "own", 0.5, 0.0)
        s += np.where(purpose == "business", 0.5, 0.0) - np.where(purpose == "car", 0.3, 0.0)
        return s - 0.1
    s = -1.5 * z_debt + 1.4 * z_inc + 1.2 * z_lines + 0.9 * z_emp + 0.5 * z_age
    s += np.where(home == "own", 0.6, 0.0) - np.where(home == "rent", 0.3, 0.0)
    s += np.where(purpose == "education", 0.6, 0.0) - np.where(purpose == "business", 0.4, 0.0)
    return s - 0.1


def generate_batch(
    batch_index: int,
    rows: int,
    seed: int,
    *,
    data_drift_at: int | None = None,
    concept_drift_at: int | None = None,
    shift: float = 1.0,
) -> pd.DataFrame:
    """One batch of ``rows`` applicants plus the label column ``default`` (int 0/1).

    Data drift applies to batches with ``batch_index >= data_drift_at``, concept
    drift to batches with ``batch_index >= concept_drift_at``; ``None`` means never.
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    rng = _rng(seed, batch_index)
    data_drifted = data_drift_at is not None and batch_index >= data_drift_at
    concept = 1 if concept_drift_at is not None and batch_index >= concept_drift_at else 0
    df = _features(rng, rows, data_drifted, shift)
    p = 1.0 / (1.0 + np.exp(-_K * _score(df, concept)))
    df[DEMO_TARGET] = (rng.random(rows) < p).astype(int)
    return df


def write_batch(df: pd.DataFrame, path: Path | str) -> Path:
    """Write ``df`` as CSV (``.csv``) or Parquet (``.parquet``/``.pq``), by suffix; return the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix in (".parquet", ".pq"):
        df.to_parquet(path, index=False)
    else:
        raise ValueError(f"cannot write {path}: unsupported suffix {suffix!r} (use .csv or .parquet)")
    return path
