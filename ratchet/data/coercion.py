"""Typing of a batch's cells: numbers, booleans and category values from what a file holds
(CSV cells are strings; Parquet columns keep their types). Each parser returns the values and
a mask of the cells that are not of the type, which the audit counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})
_BAD = object()  # marks a cell that failed to parse


def _all_text(s: pd.Series) -> bool:
    """Every non-null cell is a str (a CSV column): vectorized string methods apply."""
    return s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty")


def _strip(s: pd.Series) -> pd.Series:
    if _all_text(s):
        return s.str.strip()
    return s.map(lambda x: x.strip() if isinstance(x, str) else x)


def parse_numeric(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(float values, mask of non-null cells that are not numbers)."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        num = s.astype("float64")
    else:
        stripped = _strip(s)
        num = pd.to_numeric(stripped, errors="coerce").astype("float64")
        parsed = num.notna()
        if parsed.any():
            # pandas' to_numeric is not correctly rounded: a third of 17-digit decimals (what
            # to_csv writes) come out 1 ulp off. Python's float() (what astype runs per value) is,
            # as pyarrow's CSV reader is: the cells it parsed go through it again, so a file's
            # numbers are typed alike by either reader (reading.iter_typed_batch).
            try:
                num[parsed] = stripped[parsed].astype("float64")
            except (TypeError, ValueError):  # a cell pandas reads as a number and float() does not
                pass
    return num, s.notna() & num.isna()


def parse_bool(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(nullable boolean values, mask of non-null cells that are not booleans).

    Accepted: booleans, 0/1, and (any case) true/false, t/f, yes/no, y/n.
    """
    if pd.api.types.is_bool_dtype(s):
        return s.astype("boolean"), pd.Series(False, index=s.index)

    def one(x: Any) -> Any:
        if x is None or (isinstance(x, float) and np.isnan(x)) or x is pd.NA:
            return pd.NA
        if isinstance(x, bool | np.bool_):
            return bool(x)
        key = str(x).strip().lower()
        if key in TRUE_WORDS:
            return True
        if key in FALSE_WORDS:
            return False
        return _BAD

    mapped = s.map(one)
    bad = mapped.map(lambda x: x is _BAD).astype(bool)
    return mapped.where(~bad, pd.NA).astype("boolean"), bad


def as_category_str(s: pd.Series) -> pd.Series:
    """Category values as stripped strings (integral floats without ``.0``); nulls stay NaN."""

    def one(x: Any) -> Any:
        if x is None or x is pd.NA or (isinstance(x, float) and np.isnan(x)):
            return np.nan
        if isinstance(x, float | np.floating) and float(x).is_integer():
            return str(int(x))
        return str(x).strip()

    if isinstance(s.dtype, pd.CategoricalDtype):
        # each distinct value once (a text column pyarrow read as a dictionary), then spread by
        # its codes: the same strings as the per-value rule below, without a pass per row
        values = as_category_str(pd.Series(s.cat.categories, dtype=object)).to_numpy(dtype=object)
        lookup = np.append(values, np.nan)  # code -1 (a null) picks the NaN at the end
        return pd.Series(lookup[s.cat.codes.to_numpy()], index=s.index, dtype=object)
    if _all_text(s):
        return s.str.strip().where(s.notna(), np.nan).astype(object)
    return s.map(one).astype(object)
