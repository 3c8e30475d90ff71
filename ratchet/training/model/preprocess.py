"""Preprocessing fitted on the training split only, shipped inside the model.

scikit-learn's ColumnTransformer does the work (imputation, scaling, one-hot
with unseen categories ignored) rather than hand-written code: it is well
tested, picklable, and the same object runs at training and at serving time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ratchet.core.schema import Schema

MISSING = "__missing__"


def build_preprocessor(schema: Schema) -> ColumnTransformer:
    numeric = [c.name for c in schema.columns if c.dtype in ("float", "int", "bool")]
    categorical = [c.name for c in schema.columns if c.dtype == "category"]
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


def frame_for_model(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Select and type the feature columns the preprocessor expects.

    Missing optional values become NaN/None (imputed later); categories are
    strings so that an int-looking category from JSON matches training.
    """
    out = {}
    for col in schema.columns:
        if col.name not in df.columns:
            raise KeyError(f"missing feature column {col.name!r}")
        s = df[col.name]
        if col.dtype == "category":
            # missing as NaN, which SimpleImputer fills; a None would become a category of its own
            out[col.name] = s.astype(object).map(lambda v: np.nan if pd.isna(v) else str(v))
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
