"""Infer a ``Schema`` from a sample of the user's data (``ratchet init --schema-from``).

The inferred schema is a starting point a person reviews before committing it. Every
tolerance in it is measured from the sample with a margin, so clean batches of the same
data pass, and every column is described in one pass: a column the model should not
see is kept with ``role: ignore`` and an ``ignore_reason``, never refused.

* **dtype** per column: ``bool`` for booleans (or text that is only
  true/false/yes/no), ``int`` for integer columns (or text that is only
  integers), ``float`` for other numbers, ``datetime`` for dates and times
  (pandas datetimes, Python dates, or text that is only ISO 8601 dates/times),
  ``category`` for other text and for pandas categoricals.
* **role** ``ignore`` (kept in the data repository, checked for presence, never fed to
  the model), with the reason, for:

  - a column with no values, or with one value only (constant);
  - an identifier: an integer column of at least ``ID_MIN_ROWS`` values that are all
    different and either in increasing (or decreasing) order, or spread so thinly that
    values drawn at random over their range would repeat about ``ID_EXPECTED_TIES``
    times; or a text column with more than ``max_categories`` distinct values, at least
    ``ID_SINGLETON_SHARE`` of its rows holding a value seen once;
  - free text: such a text column whose values average ``FREE_TEXT_WORDS`` words or more;
  - time spans (``timedelta``).

  ``feature=`` (``--feature COL``) keeps such a column as a feature (an identifier-like
  text column becomes a category with an "other" bucket); ``ignore=`` (``--ignore COL``)
  ignores any column.
* **datetime** features are **derived**, not ignored: the model sees the calendar parts
  (year, month, day, day of week, hour) that vary in the sample, listed in
  ``datetime_parts``; training and serving compute them from the raw value
  (``ratchet.data.datetimes``), so ``/predict`` takes the ISO string itself. A date
  carries season, weekday and trend, which a model given nothing would lose; a value
  with an offset is converted to UTC first. No range is enforced on a date (time moves
  forward).
* **min/max** for numeric columns: the observed range widened by ``margin``
  times its span on each side (a constant column is widened by ``margin`` times
  its magnitude, at least ``margin``), so ordinary new data passes and absurd
  values do not. A column never seen negative keeps ``min >= 0``. Int bounds
  are rounded outward to whole numbers. A batch is rejected only when more than
  ``max_out_of_range_share`` of a column's rows are outside (default 1 %); fewer are
  warnings, a drift signal.
* **categories**: the observed set, sorted. A text column with more than
  ``max_categories`` distinct values that is not identifier-like keeps its
  ``max_categories`` most frequent values, and ``other_bucket: true``: the rest share one
  "other" bucket at training and serving. **max_unseen_share** of a category column is
  the Good-Turing estimate of the chance that a new row holds a value the sample never
  showed (the share of rows whose value the sample holds once), ``x 1.5 + 0.01``; ``0``
  when no value was seen once: a category missing from a well-covered sample is news
  and rejects the batch, as before. Fewer unseen rows than the limit are warnings, and
  those rows reach the model's "other" bucket.
* **max_null_share**: ``0.01`` for a column with no nulls, otherwise
  ``1.5 x observed share + 0.01`` (capped at 1), leaving room for sampling noise.
* **max_duplicate_share**: the sample's share of rows repeating an earlier row
  ``x 1.5 + 0.02``, at least the ``Schema`` default (5 %): coded survey answers repeat
  rows by nature, a file appended twice still stands out. It is measured on a sample of
  the batches' size; batches much larger than the sample repeat more rows.
* **min_rows** ``1``: a small batch is normal (a quiet day); an empty file is refused
  by its own rule, and a batch too small to hold two classes by the label checks.
* **target**: its task and observed classes, sorted (ints when every label is a
  whole number, else strings); or, for a numeric target with fractions or with
  many distinct whole numbers (see ``REGRESSION_MIN_DISTINCT``), ``regression``
  with the observed min and max. ``task=`` overrides the inferred task.

``allow_extra_columns`` and ``max_file_mb`` keep the ``Schema`` defaults.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ratchet.core.schema import ColumnSpec, Schema, TargetSpec, Task
from ratchet.data.coercion import as_category_str, parse_bool, parse_numeric
from ratchet.data.datetimes import parse_datetimes
from ratchet.data.reading import read_batch
from ratchet.data.violations import BatchRejected

_INT_RE = re.compile(r"^[+-]?\d+$")
_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_BOOL_WORDS = {"true", "false", "yes", "no", "t", "f", "y", "n"}

# identifiers and free text (see the module doc)
ID_MIN_ROWS = 20  # fewer values than this say nothing about distinctness
ID_EXPECTED_TIES = 3.0  # no repeat where random values would give this many: P(no tie) ~ e^-3 = 5 %
ID_SINGLETON_SHARE = 0.5  # a text column whose rows mostly hold a value seen once
FREE_TEXT_WORDS = 6  # mean words per value from which such a column is free text, not an identifier
# a category's share of unseen rows that rejects a batch: Good-Turing estimate x factor + margin
UNSEEN_FACTOR, UNSEEN_MARGIN = 1.5, 0.01
# the calendar parts a date/time feature may give the model (those that vary in the sample)
DATETIME_PARTS = ("year", "month", "day", "dayofweek", "hour")


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


def _all_datetimes(values: pd.Series) -> bool:
    """Every (non-null) value is a date/time: ISO 8601 text, or date/datetime objects."""
    if values.map(lambda x: isinstance(x, str)).all() and not values.map(_looks_iso).all():
        return False
    _, bad = parse_datetimes(values)
    return not bad.any()


def _looks_iso(x: str) -> bool:
    return _ISO_DATE_RE.match(x.strip()) is not None


def _infer_dtype(s: pd.Series) -> str:
    """The dtype of a column with values: a ``DType``, or ``timedelta``."""
    values = s.dropna()
    if pd.api.types.is_bool_dtype(s):
        return "bool"
    if isinstance(s.dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_integer_dtype(s):
        return "int"
    if pd.api.types.is_float_dtype(s):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(s):
        return "timedelta"
    # text (CSV cells, object columns): look at the values
    _, bad_bool = parse_bool(values)
    words = values.map(lambda x: str(x).strip().lower())
    if not bad_bool.any() and words.isin(_BOOL_WORDS).any():
        return "bool"
    _, bad_num = parse_numeric(values)
    if not bad_num.any():
        return "int" if values.map(_looks_integer).all() else "float"
    if _all_datetimes(values):
        return "datetime"
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


class _Refused(ValueError):
    """A column that cannot be what ``feature=`` asks: collected, then raised as one error."""


def _shown(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return repr(v) if isinstance(v, str) else str(v)


def _constant(values: pd.Series) -> str | None:
    uniq = values.unique()
    return f"is constant (every value is {_shown(uniq[0])})" if len(uniq) == 1 else None


def _integer_identifier(finite: pd.Series) -> str | None:
    """Why an integer column looks like an identifier (see the module doc), or None."""
    k = len(finite)
    if k < ID_MIN_ROWS or finite.nunique() < k:
        return None
    v = finite.to_numpy(dtype="float64")
    steps = np.diff(v)
    if (steps > 0).all() or (steps < 0).all():
        return f"has {k} distinct whole numbers in {k} rows, in order: an identifier"
    ties = k * (k - 1) / 2 / (v.max() - v.min() + 1)
    if ties >= ID_EXPECTED_TIES:
        return (
            f"has {k} distinct whole numbers in {k} rows, where numbers drawn from "
            f"{_shown(v.min())}..{_shown(v.max())} would repeat about {ties:.0f} times: an identifier"
        )
    return None


def _unseen_share_limit(counts: pd.Series, n_rows: int) -> float:
    """Good-Turing: the share of rows whose value the sample holds once estimates the share of
    new rows with a value never seen; x 1.5 + 0.01, or 0 when no value was seen once."""
    once = int((counts == 1).sum())
    if once == 0:
        return 0.0
    return min(1.0, round(UNSEEN_FACTOR * once / n_rows + UNSEEN_MARGIN, 4))


def _duplicate_share_limit(observed: float) -> float:
    return min(1.0, max(Schema.model_fields["max_duplicate_share"].default, round(1.5 * observed + 0.02, 4)))


def _infer_column(s: pd.Series, name: str, margin: float, max_categories: int, role: str | None) -> ColumnSpec:
    """One column's spec; ``role`` is what ``ignore=``/``feature=`` asked (None: infer it)."""
    values = s.dropna()
    spec: dict = {"name": name, "max_null_share": _null_share_limit(float(s.isna().mean()))}
    if len(values) == 0:
        if role == "feature":
            raise _Refused(f"column {name!r} has no values in the sample: it cannot be a feature")
        return ColumnSpec(**spec, dtype="text", role="ignore", ignore_reason="has no values in the sample")
    dtype = _infer_dtype(s)
    reason: str | None = None
    if dtype == "timedelta":
        if role == "feature":
            raise _Refused(f"column {name!r} holds time spans ({s.dtype}): convert them to numbers to use them")
        dtype, reason = "text", f"holds time spans ({s.dtype}): convert them to numbers to use them"
    elif dtype in ("int", "float"):
        num, _ = parse_numeric(s)
        finite = num[np.isfinite(num)]
        if len(finite) == 0:
            if role == "feature":
                raise _Refused(f"column {name!r} has no finite numbers to take a range from")
            dtype, reason = "text", "has no finite numbers"
        else:
            spec["min"], spec["max"] = _bounds(finite, dtype, margin)
            reason = _constant(finite) or (_integer_identifier(finite) if dtype == "int" else None)
    elif dtype == "bool":
        b, _ = parse_bool(values)
        reason = _constant(b.astype(bool))
    elif dtype == "datetime":
        ts, _ = parse_datetimes(values)
        varying = [p for p in DATETIME_PARTS if getattr(ts.dt, p).nunique() > 1]
        if varying:
            spec["datetime_parts"] = varying
        else:
            reason = f"is constant (every value is {ts.iloc[0].isoformat()})"
    else:  # category
        cats = as_category_str(values)
        counts = cats.value_counts()
        if len(counts) > max_categories:
            once = float((counts == 1).sum()) / len(cats)
            if once >= ID_SINGLETON_SHARE:
                free = cats.str.split().str.len().mean() >= FREE_TEXT_WORDS
                dtype = "text"
                reason = (
                    f"has {len(counts)} distinct text values in {len(cats)} rows, {once:.0%} of the rows "
                    f"holding a value seen once: {'free text' if free else 'an identifier'}"
                )
            # the most frequent max_categories values (ties: by value); the rest share one bucket
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_categories]
            spec["categories"] = sorted(v for v, _ in ranked)
            spec["other_bucket"] = True
        else:
            spec["categories"] = sorted(counts.index.tolist())
            spec["max_unseen_share"] = _unseen_share_limit(counts, len(s))
            reason = _constant(cats)
    if role == "feature" and dtype == "text":
        dtype = "category"  # an identifier-like text column kept on request: its top values
    if role == "ignore":
        reason = "ignored on request"
    elif role == "feature":
        reason = None
    if reason is None:
        return ColumnSpec(**spec, dtype=dtype)
    if dtype == "text":  # a text column has no categories to keep
        spec = {k: v for k, v in spec.items() if k not in ("categories", "other_bucket", "max_unseen_share")}
    return ColumnSpec(**spec, dtype=dtype, role="ignore", ignore_reason=reason)


def _names(value: str | Sequence[str] | None) -> list[str]:
    """Column names from a sequence, or from one comma-separated string (as ``--ignore a,b``)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip()]


def _requested_roles(
    columns: list[str], target: str, ignore: str | Sequence[str] | None, feature: str | Sequence[str] | None
) -> dict[str, str]:
    ignore, feature = _names(ignore), _names(feature)
    unknown = [c for c in dict.fromkeys(ignore + feature) if c not in columns]
    if unknown:
        raise ValueError(
            f"no column {', '.join(map(repr, unknown))} in the sample (ignore/feature); "
            f"columns are: {', '.join(map(repr, columns))}"
        )
    both = [c for c in ignore if c in feature]
    if both:
        raise ValueError(f"column(s) {', '.join(map(repr, both))} are asked to be both ignored and features")
    if target in ignore or target in feature:
        raise ValueError(f"{target!r} is the target: it can be neither ignored nor a feature")
    return {**dict.fromkeys(ignore, "ignore"), **dict.fromkeys(feature, "feature")}


def infer_schema(
    df: pd.DataFrame,
    target: str,
    *,
    margin: float = 0.5,
    max_categories: int = 50,
    task: Task | None = None,
    ignore: str | Sequence[str] | None = (),
    feature: str | Sequence[str] | None = (),
    max_out_of_range_share: float | None = None,
) -> Schema:
    """A ``Schema`` describing ``df``: every column but ``target``, each a feature or ignored
    (with the reason). See the module doc.

    ``task`` (binary, multiclass, regression) overrides the task inferred from the target.
    ``ignore`` / ``feature``: columns to ignore / to keep as features whatever inference says.
    ``max_out_of_range_share``: the schema's share of out-of-range rows that rejects a batch
    (default the ``Schema``'s). Raises ``ValueError`` (one line, every column named) when no
    column is left for the model, or when a requested feature cannot be one."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if max_categories < 1:
        raise ValueError(f"max_categories must be >= 1, got {max_categories}")
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
    roles = _requested_roles(list(df.columns), target, ignore, feature)

    columns: list[ColumnSpec] = []
    refused: list[str] = []
    for name in df.columns:
        if name == target:
            continue
        try:
            columns.append(_infer_column(df[name], name, margin, max_categories, roles.get(name)))
        except _Refused as e:
            refused.append(str(e))
    if refused:
        raise ValueError("; ".join(refused))
    if not any(c.role == "feature" for c in columns):
        # nothing left for the model: an integer "identifier" is a guess from its numbers alone,
        # so such columns stay features rather than leave an empty model (a person reviews it)
        columns = [
            c.model_copy(update={"role": "feature", "ignore_reason": None})
            if c.dtype == "int" and c.role == "ignore" and c.ignore_reason.endswith(": an identifier")
            else c
            for c in columns
        ]
    if not any(c.role == "feature" for c in columns):
        why = "; ".join(f"column {c.name!r} {c.ignore_reason}" for c in columns) or "the sample has no other column"
        raise ValueError(f"no feature column is left for the model: {why}; keep one with feature=[...] (--feature COL)")

    extra: dict = {}
    if max_out_of_range_share is not None:
        extra["max_out_of_range_share"] = max_out_of_range_share
    return Schema(
        columns=columns,
        target=_infer_target(df[target], target, max_categories, task),
        min_rows=1,
        max_duplicate_share=_duplicate_share_limit(float(df.duplicated().mean())),
        max_unseen_share=0.0,
        **extra,
    )


# A numeric target is a quantity to regress on, not a class label, when it holds fractions, or
# when its whole numbers take many values: more than 20 (counts, amounts, ages: the 0-74 visits
# that once became 38 classes), or more than 10 that are also over 5% of the rows (few rows, yet
# hardly a row shares its value with another). A few distinct integers stay labels (a 1-5 rating,
# codes): pass task="regression" to regress on them.
REGRESSION_MIN_DISTINCT = 20
REGRESSION_DISTINCT_SHARE = 0.05
_SHARE_MIN_DISTINCT = 10


def _infer_target(s: pd.Series, target: str, max_classes: int, task: Task | None) -> TargetSpec:
    values = s.dropna()
    num, bad = parse_numeric(values)
    numeric = len(values) > 0 and not pd.api.types.is_bool_dtype(values) and not bad.any()
    if task is None and numeric:
        whole = bool((num == num.round()).all())
        distinct = int(num.nunique())
        many = distinct > REGRESSION_MIN_DISTINCT or (
            distinct > _SHARE_MIN_DISTINCT and distinct > REGRESSION_DISTINCT_SHARE * len(num)
        )
        if not whole or many:
            task = "regression"
    if task == "regression":
        if not numeric:
            raise ValueError(f"target column {target!r} is not numeric; regression needs a numeric target")
        finite = num[np.isfinite(num)]
        if finite.nunique() < 2:
            raise ValueError(
                f"target column {target!r} has {finite.nunique()} distinct finite value(s); "
                "a regression target needs at least two"
            )
        return TargetSpec(name=target, task="regression", min=float(finite.min()), max=float(finite.max()))
    classes = _infer_classes(s, target, max_classes)
    inferred = "binary" if len(classes) == 2 else "multiclass"
    if task is not None and task != inferred:
        raise ValueError(f"target column {target!r} has {len(classes)} classes; task {task!r} does not fit")
    return TargetSpec(name=target, task=inferred, classes=classes)


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
            f"target column {target!r} has {len(classes)} distinct values; a class label takes at most "
            f"{max_classes} (a numeric target can be learnt as regression: task 'regression')"
        )
    return classes
