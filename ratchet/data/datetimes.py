"""Dates and times in batches and requests: one parser, and the calendar features derived from it.

A date/time feature (``dtype: datetime`` in the schema) arrives as an ISO 8601 string
(``2024-05-01``, ``2024-05-01T08:30:00``, ``2024-05-01 08:30:00.25+02:00``, ``...Z``), or, in
Parquet and in frames, as a pandas/Python datetime or date. Every value is brought to one
form, a naive ``datetime`` in UTC: a value with an offset is converted to UTC, a value
without one is taken as UTC already. The model never sees the raw value: it sees the
calendar parts the schema lists (``datetime_parts``), computed by ``datetime_features`` from
this same parser at ingest (``ratchet.data.checks``), training
(``ratchet.training.model.preprocess``) and serving (``ratchet.serving.validation`` and the
fast path), so the three can never disagree.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

# every part a schema may list; the order features are built in
PARTS = ("year", "month", "day", "dayofweek", "hour", "minute")

_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}"  # date
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,](\d{1,9}))?)?)?"  # time, optional seconds and fraction
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?$"  # offset
)
# what pandas' datetime64[ns] can hold; a value outside is refused rather than overflowing
_MIN_YEAR, _MAX_YEAR = 1678, 2261


def _from_string(text: str) -> datetime:
    s = text.strip().upper()
    m = _ISO.match(s)
    if m is None:
        raise ValueError(f"not an ISO 8601 date/time: {text!r}")
    frac = m.group(1)
    if frac is not None and len(frac) > 6:  # Python keeps microseconds
        s = s[: m.start(1)] + frac[:6] + s[m.end(1) :]
    try:
        return datetime.fromisoformat(s.replace(",", "."))
    except ValueError:
        raise ValueError(f"not a valid date/time: {text!r}") from None


def parse_datetime(value: Any) -> datetime | None:
    """A value as a naive UTC ``datetime``; None for a missing value. ``ValueError`` for
    anything that is not a date/time (a string must be ISO 8601, a number is refused)."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        out = _from_string(value)
    elif isinstance(value, pd.Timestamp):
        out = value.to_pydatetime(warn=False)
    elif isinstance(value, datetime):
        out = value
    elif isinstance(value, date):
        out = datetime(value.year, value.month, value.day)
    elif isinstance(value, np.datetime64):
        if np.isnat(value):
            return None
        out = pd.Timestamp(value).to_pydatetime(warn=False)
    else:
        raise ValueError(f"not a date/time: {value!r} ({type(value).__name__})")
    if out.tzinfo is not None:
        out = out.astimezone(UTC).replace(tzinfo=None)
    if not _MIN_YEAR <= out.year <= _MAX_YEAR:
        raise ValueError(f"date/time out of the supported years {_MIN_YEAR}-{_MAX_YEAR}: {value!r}")
    return out


def parse_datetimes(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(``datetime64[ns]`` values, naive UTC; mask of non-null cells that are not dates/times)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        values = s.dt.tz_convert("UTC").dt.tz_localize(None) if s.dt.tz is not None else s
        return values.astype("datetime64[ns]"), pd.Series(False, index=s.index)
    parsed: list[datetime | None] = []
    bad = np.zeros(len(s), dtype=bool)
    for i, v in enumerate(s.tolist()):
        try:
            parsed.append(parse_datetime(v))
        except ValueError:
            parsed.append(None)
            bad[i] = True
    # the values, not the Series: a Series given a new index aligns to it, and a chunk after the
    # first (index from chunk_rows on) came out all null
    out = pd.Series(pd.to_datetime(pd.Series(parsed, dtype=object), errors="coerce").to_numpy(), index=s.index)
    return out.astype("datetime64[ns]"), pd.Series(bad, index=s.index)


def _part(d: datetime, part: str) -> float:
    if part == "dayofweek":
        return float(d.weekday())  # Monday 0, as pandas' dayofweek
    return float(getattr(d, part))


def datetime_features(values: pd.Series | list, parts: list[str] | tuple[str, ...]) -> np.ndarray:
    """(n, len(parts)) float64 calendar parts of ``values``; NaN for a missing or unparsable value.

    A ``datetime64`` Series is read with pandas' ``.dt`` accessors (training); anything else
    value by value with ``parse_datetime`` (serving); both give the same numbers."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown datetime part(s) {unknown}; known: {', '.join(PARTS)}")
    if isinstance(values, pd.Series) and not pd.api.types.is_datetime64_any_dtype(values):
        values = values.tolist()
    if isinstance(values, pd.Series):
        ts, _ = parse_datetimes(values)
        cols = [getattr(ts.dt, p).to_numpy(dtype="float64", na_value=np.nan) for p in parts]
        return np.column_stack(cols) if cols else np.zeros((len(values), 0))
    out = np.full((len(values), len(parts)), np.nan)
    for i, v in enumerate(values):
        try:
            d = v if type(v) is datetime and v.tzinfo is None else parse_datetime(v)
        except ValueError:
            continue
        if d is not None:
            out[i] = [_part(d, p) for p in parts]
    return out
