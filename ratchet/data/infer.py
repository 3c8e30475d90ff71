"""Infer a ``Schema`` from a sample of the user's data (``ratchet init --schema-from``).

The inferred schema is a starting point a person reviews before committing it:

* **dtype** per column: ``bool`` for booleans (or text that is only
  true/false/yes/no), ``int`` for integer columns (or text that is only
  integers), ``float`` for other numbers, ``category`` for other text and for
  pandas categoricals. Text columns with more than ``max_categories`` distinct
  values (identifiers, free text) are refused with an error naming them.
* **min/max** for numeric columns: the observed range widened by ``margin``
  times its span on each side (a constant column is widened by ``margin`` times
  its magnitude, at least ``margin``), so ordinary new data passes and absurd
  values do not. A column never seen negative keeps ``min >= 0``. Int bounds
  are rounded outward to whole numbers.
* **categories**: the observed set, sorted.
* **max_null_share**: ``0.01`` for a column with no nulls, otherwise
  ``1.5 x observed share + 0.01`` (capped at 1), leaving room for sampling noise.
* **target**: its observed classes, sorted; ints when every label is a whole
  number, else strings.

``min_rows``, ``max_duplicate_share``, ``allow_extra_columns`` and
``max_file_mb`` keep the ``Schema`` defaults.
"""

from __future__ import annotations

import math
import numbers
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ratchet.core.schema import ColumnSpec, Schema, TargetSpec
from ratchet.data.checks import (
    BatchRejected,
    as_category_str,
    parse_bool,
    parse_numeric,
    read_batch,
)

_INT_RE = re.compile(r"^[+-]?\d+$")
_BOOL_WORDS = {"true", "false", "yes", "no", "t", "f", "y", "n"}


def read_table(path: Path | str) -> pd.DataFrame:
    """Read a CSV or Parquet file (by suffix) the way batches are read: CSV cells as strings.

    Raises ``ValueError`` (naming the problems) for a file ``read_batch`` would reject.
    """
    # A throwaway schema just to reuse read_batch's checks; no size limit for a sample file.
    probe = Schema(columns=[], target=TargetSpec(name="__none__", classes=[0, 1]), max_file_mb=float(2**40))
    try:
        return read_batch(path, probe)
    except BatchRejected as e:
        raise ValueError(f"cannot read {path}: " + "; ".join(v.message for v in e.violations)) from None


def _null_share_limit(observed: float) -> float:
    if observed <= 0:
        return 0.01
    return min(1.0, round(1.5 * observed + 0.01, 4))


def _looks_integer(x: object) -> bool:
    if isinstance(x, str):
        return _INT_RE.match(x.strip()) is not None
    return isinstance(x, numbers.Integral) and not isinstance(x, bool | np.bool_)


def _infer_dtype(s: pd.Series, name: str, max_categories: int) -> str:
    values = s.dropna()
    if len(values) == 0:
        raise ValueError(f"column {name!r} has no values at all; drop it from the sample or fill it")
    if pd.api.types.is_bool_dtype(s):
        return "bool"
    if isinstance(s.dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_integer_dtype(s):
        return "int"
    if pd.api.types.is_float_dtype(s):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(s) or pd.api.types.is_timedelta64_dtype(s):
        raise ValueError(f"column {name!r} holds dates/times ({s.dtype}); convert it to numbers or drop it")
    # text (CSV cells, object columns): look at the values
    _, bad_bool = parse_bool(values)
    words = values.map(lambda x: str(x).strip().lower())
    if not bad_bool.any() and words.isin(_BOOL_WORDS).any():
        return "bool"
    _, bad_num = parse_numeric(values)
    if not bad_num.any():
        return "int" if values.map(_looks_integer).all() else "float"
    n_distinct = as_category_str(values).nunique()
    if n_distinct > max_categories:
        raise ValueError(
            f"column {name!r} has {n_distinct} distinct text values (more than max_categories="
            f"{max_categories}); it looks like an identifier or free text: drop it from the data "
            f"or raise max_categories"
        )
    return "category"


def _bounds(values: pd.Series, dtype: str, margin: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo
    pad = margin * span if span > 0 else margin * max(abs(hi), abs(lo), 1.0)
    new_lo, new_hi = lo - pad, hi + pad
    if lo >= 0:
        new_lo = max(new_lo, 0.0)
    if dtype != "int" and pad <= 0:  # margin 0: the observed range as is
        return new_lo, new_hi
    # round outward to 3 significant digits of the padding, so the YAML a person reviews is readable
    step = 1.0 if dtype == "int" else 10.0 ** (math.floor(math.log10(pad)) - 2)
    new_lo = math.floor(new_lo / step) * step
    new_hi = math.ceil(new_hi / step) * step
    if dtype != "int":
        digits = max(0, -math.floor(math.log10(step)))
        new_lo, new_hi = round(new_lo, digits), round(new_hi, digits)
    return float(new_lo), float(new_hi)


def infer_schema(df: pd.DataFrame, target: str, *, margin: float = 0.5, max_categories: int = 50) -> Schema:
    """A ``Schema`` describing ``df``: every column but ``target`` is a feature. See the module doc."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if not all(isinstance(c, str) for c in df.columns):
        df = df.rename(columns=str)
    if target not in df.columns:
        raise ValueError(
            f"target column {target!r} is not in the data; columns are: {', '.join(map(repr, df.columns))}"
        )
    if len(df) == 0:
        raise ValueError("cannot infer a schema from a table with no rows")
    dup = sorted(set(df.columns[df.columns.duplicated()]))
    if dup:
        raise ValueError(f"duplicate column names: {dup}")

    columns: list[ColumnSpec] = []
    for name in df.columns:
        if name == target:
            continue
        s = df[name]
        dtype = _infer_dtype(s, name, max_categories)
        spec: dict = {
            "name": name,
            "dtype": dtype,
            "max_null_share": _null_share_limit(float(s.isna().mean())),
        }
        if dtype in ("int", "float"):
            num, _ = parse_numeric(s)
            if not np.isfinite(num).any():
                raise ValueError(f"column {name!r} has no finite numbers to take a range from")
            spec["min"], spec["max"] = _bounds(num.dropna(), dtype, margin)
        elif dtype == "category":
            spec["categories"] = sorted(as_category_str(s).dropna().unique().tolist())
        columns.append(ColumnSpec(**spec))

    return Schema(
        columns=columns,
        target=TargetSpec(name=target, classes=_infer_classes(df[target], target, max_categories)),
    )


def _infer_classes(s: pd.Series, target: str, max_classes: int) -> list[str | int]:
    values = s.dropna()
    classes: list[str | int]
    num, bad = parse_numeric(values)
    if (
        len(values)
        and not pd.api.types.is_bool_dtype(values)
        and not bad.any()
        and (num == num.round()).all()
    ):
        classes = sorted({int(v) for v in num})
    else:
        classes = sorted(set(as_category_str(values).tolist()))
    if len(classes) < 2:
        raise ValueError(
            f"target column {target!r} has {len(classes)} distinct label(s) "
            f"({classes}); a classifier needs at least two classes"
        )
    if len(classes) > max_classes:
        raise ValueError(
            f"target column {target!r} has {len(classes)} distinct values; ratchet trains classifiers, "
            f"so the target should be a class label (at most {max_classes} classes)"
        )
    return classes
