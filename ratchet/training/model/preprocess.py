"""Preprocessing fitted on the training split only, shipped inside the model.

scikit-learn's ColumnTransformer does the work (imputation, scaling, one-hot
with unseen categories ignored) rather than hand-written code: it is well
tested, picklable, and the same object runs at training and at serving time.

Only the schema's features reach it (``role: ignore`` columns never do). Before it,
``frame_for_model`` maps a category value outside the schema's ``categories`` (an
unseen value, or one past an ``other_bucket`` column's most frequent values) to one
``OTHER`` value, the column's "other" bucket (learnt when the training rows hold
such values, all zeros otherwise), and turns a datetime feature into its calendar
parts (``<column>.year``, ``<column>.month``, ...: ``ratchet.data.datetimes``), which
are scaled like any number; the raw date never reaches the network.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ratchet.core.schema import Schema, TargetSpec
from ratchet.data.datetimes import datetime_features

MISSING = "__missing__"
OTHER = "__other__"  # a category value not among the schema's categories


def derived_name(column: str, part: str) -> str:
    """The model-side name of a datetime feature's calendar part."""
    return f"{column}.{part}"


def model_columns(schema: Schema) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns the preprocessor sees: numbers and booleans, the
    calendar parts of datetime features, and categories, in schema order."""
    numeric: list[str] = []
    categorical: list[str] = []
    for c in schema.features:
        if c.dtype in ("float", "int", "bool"):
            numeric.append(c.name)
        elif c.dtype == "datetime":
            numeric += [derived_name(c.name, p) for p in c.parts]
        elif c.dtype == "category":
            categorical.append(c.name)
    names = numeric + categorical
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ValueError(f"derived datetime feature(s) {clash} clash with a column of the same name")
    return numeric, categorical


def build_preprocessor(schema: Schema) -> ColumnTransformer:
    numeric, categorical = model_columns(schema)
    parts = []
    if numeric:
        parts.append(
            (
                "num",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                numeric,
            )
        )
    if categorical:
        parts.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value=MISSING)),
                        (
                            "onehot",
                            OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32),
                        ),
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def layout(preprocessor: ColumnTransformer, width: int) -> tuple[int, list[int]]:
    """(numeric columns, one-hot width of each categorical column) of a fitted preprocessor's
    output of ``width`` columns: the numeric block comes first, then one one-hot block per
    category column (what the embedding families split their input by). The numeric count is
    what is left of the width, since an imputer drops a column with no value at all."""
    cat_sizes: list[int] = []
    for name, trans, _ in preprocessor.transformers_:
        if name == "cat":
            cat_sizes = [len(c) for c in trans.named_steps["onehot"].categories_]
    return width - sum(cat_sizes), cat_sizes


def category_value(v: object, known: frozenset[str] | set[str]) -> object:
    """A category cell as the encoder sees it: NaN for missing (SimpleImputer fills it; a None
    would become a category of its own), the string for a known value, else ``OTHER``."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return np.nan
    v = v if isinstance(v, str) else str(v)
    return v if v in known else OTHER


def frame_for_model(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Select and type the feature columns the preprocessor expects.

    Missing optional values become NaN (imputed later); categories are strings so
    that an int-looking category from JSON matches training, and values outside the
    schema's categories become ``OTHER``; a datetime feature (ISO strings, datetimes,
    or ``datetime64``) becomes its calendar parts.
    """
    out = {}
    for col in schema.features:
        if col.name not in df.columns:
            raise KeyError(f"missing feature column {col.name!r}")
        s = df[col.name]
        if col.dtype == "category":
            known = frozenset(col.categories or ())
            out[col.name] = s.astype(object).map(lambda v, known=known: category_value(v, known))
        elif col.dtype == "datetime":
            values = datetime_features(s, col.parts)
            for j, part in enumerate(col.parts):
                out[derived_name(col.name, part)] = values[:, j]
        else:
            out[col.name] = pd.to_numeric(s, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=df.index)


def encode_target(y: pd.Series, classes: list) -> np.ndarray:
    """Map labels to class indices; unknown labels are an error naming them."""
    lookup = {str(c): i for i, c in enumerate(classes)}
    keys = y.astype(str)
    unknown = sorted(set(keys) - set(lookup))
    if unknown:
        raise ValueError(f"target has labels not in the schema's classes {classes}: {unknown[:5]}")
    return keys.map(lookup).to_numpy(dtype=np.int64)


def regression_target(y: pd.Series) -> np.ndarray:
    """A regression target as float64; a missing or non-numeric value is an error naming it."""
    values = pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"regression target has {int(bad.sum())} missing or non-numeric value(s), e.g. {y[bad].head(3).tolist()}"
        )
    return values


def target_values(y: pd.Series, target: TargetSpec) -> np.ndarray:
    """What a model learns and is scored on: class indices (int64), or numbers (float64) for regression."""
    return regression_target(y) if target.is_regression else encode_target(y, list(target.classes or []))


def target_scale(y: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation) of the training split's target, to standardise it for training.

    scikit-learn's StandardScaler rather than ``y.std()``: it keeps a scale of 1 for a
    constant target instead of dividing by zero."""
    scaler = StandardScaler().fit(np.asarray(y, dtype=np.float64).reshape(-1, 1))
    return float(scaler.mean_[0]), float(scaler.scale_[0])
