"""whylogs profiles of data batches and production traffic (drift between two profiles:
``ratchet.data.profile_drift``).

A profile (``DatasetProfileView``) is a mergeable summary of a table: counts,
nulls, inferred types, a KLL quantile sketch per numeric column and frequent
items per column. Profiles of batches are stored next to the data; profiles of
served requests are merged over a window and compared against the training
data's profile to decide whether to retrain.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ratchet.core.imports import without_sklearn

# whylogs posts anonymous usage stats (hashed host name, versions, installed libraries) to
# stats.whylogs.com from a thread on first use, and joins that thread at exit (3 s timeout
# when offline). Opt out unless the user already chose: the variable is read when
# whylogs.api.usage_stats is first imported, so set it before importing whylogs.
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")


with without_sklearn():  # whylogs imports it (0.8 s) for embedding metrics ratchet never uses
    from whylogs.api import usage_stats as _whylogs_usage_stats
    from whylogs.core import DatasetProfile, DatasetProfileView
    from whylogs.core.metadata import _populate_common_profile_metadata
    from whylogs.core.preprocessing import PreprocessedColumn


if os.environ.get("WHYLOGS_NO_ANALYTICS") is not None:
    # also when whylogs was imported before this module set the variable
    _whylogs_usage_stats._TELEMETRY_DISABLED = True


def profile_frame(df: pd.DataFrame) -> DatasetProfileView:
    """Profile a pandas frame with whylogs; column names are turned into strings.

    The same profile ``why.log(pandas=df)`` makes (the same columns, metrics and sketches,
    whylogs' defaults), at a fraction of its time: whylogs splits a column into numbers, strings
    and nulls with Python lambdas per value (an ``isinf`` per float, six type tests per object),
    most of its time on a batch. Here float64, int64 and text columns are split with vectorised
    numpy/pandas (``_split``) and handed to whylogs' own metric updates (``columnar_update``), and a
    text column's frequent items and HyperLogLog get each distinct value once, with its count as
    the weight (``_track_text``). Any other dtype (booleans, datetimes, mixed objects) goes through
    whylogs' own split. ``tests/data/test_profiling.py`` compares the two profiles.

    What is exact and what is a sketch does not change: counts, nulls, NaN, infinities, types, min,
    max, mean and variance are exact; quantiles (KLL, k=1024: rank error about 0.3 %), the
    cardinality (HLL, about 1.6 %) and frequent items are sketches. A HyperLogLog is the same
    whatever the order or repetition of its values. The frequent-items sketch keeps exact counts up
    to 768 distinct values per column (whylogs' ``fi_lg_max_k`` 10); past that its estimates are
    within its a-priori error (``get_apriori_error``: about 0.35 % of the rows) either way, but may
    differ from the per-value updates' by that much, since a purge depends on the order of updates."""
    return FrameProfiler().track(df).view()


class FrameProfiler:
    """``profile_frame`` of frames tracked one after another (a batch's chunks): one whylogs
    profile updated chunk by chunk, as whylogs' own loggers do, rather than a profile per chunk
    merged (whylogs' schema resolution alone costs about 80 ms a profile). A frame whose columns
    or dtypes differ from an earlier one's (an int column with a null in one chunk is float64
    there) goes to a profile of its own, so each column keeps the metrics whylogs resolves for its
    dtype; ``view`` merges them."""

    def __init__(self) -> None:
        self._profiles: dict[tuple, DatasetProfile] = {}
        self._frames = 0

    def track(self, df: pd.DataFrame) -> FrameProfiler:
        if not all(isinstance(c, str) for c in df.columns):
            df = df.rename(columns=str)
        text = [c for c in df.columns if _is_text(df[c])]
        key = (tuple(df.columns), tuple(map(str, df.dtypes)), tuple(text))
        profile = self._profiles.get(key)
        if profile is None:
            profile = self._profiles[key] = DatasetProfile()
            # whylogs' own schema resolution (by dtype; a text column as pandas' ``string``
            # dtype, as it was handed over before) on no rows: the metrics ``why.log`` gives
            profile._schema.resolve(pandas=df.iloc[:0].astype(dict.fromkeys(text, "string")))
            profile._initialize_new_columns(tuple(df.columns))
            _populate_common_profile_metadata(profile._metadata)  # its trace id, as why.log sets
        with warnings.catch_warnings():
            # whylogs' running mean/variance warns "invalid value" on +-inf; the counts
            # metric still records the infinities, which is what validation reads.
            warnings.simplefilter("ignore", RuntimeWarning)
            for name in df.columns:
                column, series = profile._columns[name], df[name]
                if name in text:
                    _track_text(column, series)
                    continue
                split = _split_numbers(series)
                if split is None:
                    column.track_column(series)  # whylogs' own split
                elif split.numpy.ints is not None:
                    _track_ints(column, split)
                else:
                    column._process_extracted_column(split)
        self._frames += 1
        return self

    @property
    def frames(self) -> int:
        """How many frames were tracked."""
        return self._frames

    def view(self) -> DatasetProfileView:
        if not self._profiles:
            raise ValueError("FrameProfiler.view: no frame was tracked")
        return merge_profiles(p.view() for p in self._profiles.values())


def _is_text(s: pd.Series) -> bool:
    """Every non-null value a str (object dtype), or pandas' ``string`` dtype."""
    if isinstance(s.dtype, pd.StringDtype):
        return True
    return s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) == "string"


def _split_numbers(s: pd.Series) -> PreprocessedColumn | None:
    """whylogs' ``PreprocessedColumn._pandas_split`` of a float64 or int64 column, vectorised;
    None for any other dtype."""
    values = s.to_numpy()
    out = PreprocessedColumn()
    out.original, out.len = s, len(s)
    if values.dtype == np.int64:
        out.numpy.ints = values
        return out
    if values.dtype != np.float64:
        return None
    nan = np.isnan(values)
    nulls = int(nan.sum())
    out.null_count = nulls
    out.nan_count = nulls  # every null of a float64 column is a NaN
    floats = values[~nan] if nulls else values
    out.inf_count = int(np.isinf(floats).sum())
    out.numpy.floats = floats
    return out


# an int column spanning fewer values than this is counted per value (np.bincount)
_INT_SPAN = 1 << 16


def _track_ints(column: Any, split: PreprocessedColumn) -> None:
    """An int64 column into whylogs' metrics, frequent items and HyperLogLog from each distinct
    value and its count (``np.bincount``) when its values span fewer than ``_INT_SPAN``: the same
    sketches as whylogs' per-value ``update_np`` (each value as its decimal string; a HyperLogLog is
    the same whatever the repetition of its values), a third of the time on a chunk of ages."""
    ints = split.numpy.ints
    low = int(ints.min()) if len(ints) else 0
    if not len(ints) or int(ints.max()) - low >= _INT_SPAN:
        column._process_extracted_column(split)
        return
    counts = np.bincount(ints - low)
    present = np.flatnonzero(counts)
    values = present + low
    for metric in column._metrics.values():
        if metric.namespace == "frequent_items":
            sketch = metric.frequent_strings.value
            for value, n in zip(values.tolist(), counts[present].tolist(), strict=True):
                sketch.update(str(value), n)
            column._success_count += len(ints)
        elif metric.namespace == "cardinality":
            metric.hll.value.update_np(values)
            column._success_count += len(ints)
        else:
            result = metric.columnar_update(split)
            column._failure_count += result.failures
            column._success_count += result.successes


# a column with more distinct values than this share of its rows: whylogs' per-value updates,
# no quicker to replace by counts
_DISTINCT_SHARE = 0.5


def _track_text(column: Any, s: pd.Series) -> None:
    """A text column into whylogs' metrics: counts and types from the split (nulls vectorised),
    frequent items and HyperLogLog from each distinct value and its count."""
    present = s.notna().to_numpy()
    strings = s[present] if not present.all() else s
    split = PreprocessedColumn()
    split.original, split.len = s, len(s)
    split.null_count = int(len(s) - present.sum())
    if len(strings):
        split.pandas.strings = strings
    counts = strings.value_counts(sort=True) if len(strings) else None
    if counts is not None and len(counts) > _DISTINCT_SHARE * len(strings):
        column._process_extracted_column(split)  # mostly distinct values: whylogs' own updates
        return
    for metric in column._metrics.values():
        if metric.namespace == "frequent_items" and counts is not None:
            sketch, size = metric.frequent_strings.value, metric.max_frequent_item_size
            for value, n in zip(counts.index.tolist(), counts.tolist(), strict=True):
                sketch.update(value[:size], n)
            column._success_count += len(strings)
        elif metric.namespace == "cardinality" and counts is not None:
            metric.hll.value.update_str_list(counts.index.tolist())
            column._success_count += len(strings)
        else:
            result = metric.columnar_update(split)
            column._failure_count += result.failures
            column._success_count += result.successes


def serialize_profile(view: DatasetProfileView) -> bytes:
    """whylogs' own protobuf serialization (the ``.bin`` format whylogs writes)."""
    return view.serialize()


def deserialize_profile(data: bytes) -> DatasetProfileView:
    if not data:
        raise ValueError("cannot deserialize an empty profile")
    return DatasetProfileView.deserialize(data)


def merge_profiles(views: Iterable[DatasetProfileView]) -> DatasetProfileView:
    """Merge profiles of several batches into one profile of their union."""
    views = list(views)
    if not views:
        raise ValueError("merge_profiles needs at least one profile")
    merged = views[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for v in views[1:]:
            merged = merged.merge(v)
    return merged


def profile_rows(view: DatasetProfileView) -> int:
    """Number of rows a profile summarizes (the largest column count)."""
    counts = [
        col.get_metric("counts").n.value
        for col in view.get_columns().values()
        if col.get_metric("counts") is not None
    ]
    return int(max(counts, default=0))
