"""Validate a new data batch against the schema before it can reach main.

Two steps, both driven only by the ``Schema`` (no column is named in code): reading the
file (``ratchet.data.reading``: ``read_batch``, ``iter_batch``), then the audit here:
``check_batch(df, schema)`` (or ``BatchAudit`` chunk by chunk) types each column
(``ratchet.data.coercion``) and returns the typed frame plus every violation it found. Structure (columns,
  types, categories, labels, duplicate rows) is checked with pandas; nulls,
  infinities and ranges are read from a whylogs profile of the typed batch.

Unseen categories and out-of-range values are judged by share, as Great Expectations'
``mostly`` and TFDV's anomaly thresholds do: a batch is rejected only when the share of a
column's rows holding them is over the column's limit (``max_unseen_share``,
``max_out_of_range_share``, else the schema's); fewer are ``Violation``s of severity
``warning``, which reject nothing: the ingest report lists them under ``warnings``, an
unseen category reaches the model's "other" bucket, and a value slightly out of range is a
drift signal. Everything else (a missing column, a string in a numeric column, a bad
label, too many nulls or duplicates) is an ``error``. A column with ``role: ignore`` is
only checked for presence and is kept as text.

``validate_file`` does both and raises ``BatchRejected`` when any error is found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ratchet.core.schema import ColumnSpec, Schema
from ratchet.data.coercion import as_category_str, parse_bool, parse_numeric
from ratchet.data.datetimes import parse_datetimes
from ratchet.data.reading import read_batch
from ratchet.data.violations import BatchRejected, Violation

__all__ = ["BatchAudit", "BatchRejected", "Violation", "check_batch", "over_limit", "validate_file"]

_MAX_EXAMPLES = 3
# a share limit (nulls, duplicates, unseen categories, out-of-range values) is passed when a batch
# of its size drawn at the limit's rate would hold as many offending rows with probability under this
SHARE_ALPHA = 0.001


def _shown(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def _examples(values: pd.Series) -> str:
    """Up to three distinct values: text quoted (``'abc'``), numbers bare (``-5.0``)."""
    uniq = list(dict.fromkeys(_shown(v) for v in values))
    shown = ", ".join(uniq[:_MAX_EXAMPLES])
    return shown + (", ..." if len(uniq) > _MAX_EXAMPLES else "")


class _Tally:
    """How many cells of a batch broke one rule, and the first distinct ones, summed over the
    batch's chunks (``ordered``: the smallest values, or with ``reverse`` the largest, rather
    than the first seen)."""

    def __init__(self, ordered: bool = False, reverse: bool = False):
        self.count, self.ordered, self.reverse = 0, ordered, reverse
        self.values: list[Any] = []

    def add(self, values: pd.Series) -> None:
        self.count += len(values)
        if not len(values):
            return
        if self.ordered:
            new = np.unique(values.to_numpy())
            new = new[::-1] if self.reverse else new
            self.values = sorted({*self.values, *new[: _MAX_EXAMPLES + 1]}, reverse=self.reverse)
            del self.values[_MAX_EXAMPLES + 1:]
        elif len(self.values) <= _MAX_EXAMPLES:
            for v in pd.unique(values.to_numpy(dtype=object)):
                if len(self.values) > _MAX_EXAMPLES:
                    break
                if _shown(v) not in map(_shown, self.values):
                    self.values.append(v)

    def examples(self) -> str:
        return _examples(pd.Series(self.values, dtype=object))


def _share(k: int, n: int) -> str:
    return f"{k / n:.1%}" if n else "0%"


def over_limit(k: int, n: int, limit: float) -> bool:
    """Whether ``k`` rows of ``n`` are over a share ``limit`` beyond sampling noise: a batch of
    ``n`` rows drawn at the limit's rate holds ``k`` or more with probability under
    ``SHARE_ALPHA`` (one-sided binomial test). So a 100-row batch may hold 3 rows where the
    limit is 1 %, and with a limit of 0 one row is over it."""
    if n <= 0 or k / n <= limit:
        return False
    from scipy import stats  # a second of imports, paid only by a batch over a limit

    return float(stats.binom.sf(k - 1, n, limit)) < SHARE_ALPHA


def _by_share(k: int, n: int, limit: float, name: str) -> tuple[str, str]:
    """(severity, what the message adds) for ``k`` offending rows of ``n`` under a share limit."""
    if over_limit(k, n, limit):
        return "error", f"{_share(k, n)} of the rows, over the {name} of {limit:.1%}"
    if n and k / n > limit:
        return "warning", f"{_share(k, n)} of the rows, over the {name} of {limit:.1%} by no more than chance in {n} rows: not rejected"
    return "warning", f"{_share(k, n)} of the rows, within the {name} of {limit:.1%}: not rejected"


def _over_share(column: str | None, rule: str, k: int, n: int, limit: float, message: str) -> Violation:
    """A share over its limit: an error beyond sampling noise (``over_limit``), else a warning."""
    if over_limit(k, n, limit):
        return Violation(column, rule, message)
    return Violation(column, rule, message + f" (not rejected: no more than chance in {n} rows)", "warning")


def _wider(a: str | None, b: str) -> str:
    """The dtype of a column whose chunks are ``a`` and ``b`` (an int column with a null in one
    chunk is float64 over the batch; bool with a null, ``boolean``)."""
    if a is None or a == b:
        return b
    pair = {a, b}
    if pair == {"int64", "float64"}:
        return "float64"
    if pair == {"bool", "boolean"}:
        return "boolean"
    return "object"


class BatchAudit:
    """``check_batch`` for a batch read in chunks (``iter_batch``): ``add`` types one chunk and
    counts what is wrong with it, ``violations`` judges the whole batch. Counts, examples, the
    whylogs profile (merged per chunk) and the row hashes (8 bytes a row, for duplicate rows
    and the content digest) are all that is kept, so memory stays flat in the batch's size;
    ``check_batch`` is the same with one chunk.

    A column's dtype is decided per chunk (an int column with a null in one chunk is float64
    there); ``dtype_widening`` says what a whole-batch frame would hold."""

    def __init__(self, schema: Schema, profile: bool = True):
        self.schema = schema
        self.rows = 0
        self.dtypes: dict[str, str] = {}  # each typed column's dtype over the chunks so far
        self._profiler = None
        if profile:
            from ratchet.data.profiling import FrameProfiler

            self._profiler = FrameProfiler()  # one whylogs profile of the typed rows, chunk by chunk
        self._hashes: list[np.ndarray] = []
        self._sorted: np.ndarray | None = None  # the hashes sorted (``_sorted_hashes``)
        self.typed_examples = False  # a violation's examples are parsed values, not the file's text
        self._header: list[Violation] | None = None  # violations of the columns themselves
        self._present: list[str] = []
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._n_bad: dict[str, int] = {}
        self._classes: set[Any] = set()  # valid labels seen
        self._typed_columns = 0

    # -- one chunk ------------------------------------------------------------
    def _tally(self, column: str, rule: str, values: pd.Series, **kw: bool) -> None:
        t = self._tallies.get((column, rule))
        if t is None:
            t = self._tallies[(column, rule)] = _Tally(**kw)
        t.add(values)

    def _columns(self, df: pd.DataFrame) -> list[Violation]:
        """Violations of the columns (names, duplicates): the same for every chunk."""
        schema, out = self.schema, []
        for name in sorted(set(df.columns[df.columns.duplicated()])):
            out.append(Violation(name, "duplicate_column", f"column {name!r} appears more than once in the batch"))
        known = {c.name for c in schema.columns} | {schema.target.name}
        self._extras = [c for c in df.columns[~df.columns.duplicated()] if c not in known]
        self._present = [c for c in df.columns[~df.columns.duplicated()]]
        return out

    def add(self, df: pd.DataFrame) -> pd.DataFrame:
        """Type one chunk (see ``check_batch``) and count its violations; return the typed chunk."""
        from ratchet.data.rows import row_hashes

        if not all(isinstance(c, str) for c in df.columns):
            df = df.rename(columns=str)
        if self._header is None:
            self._header = self._columns(df)
        df = df.loc[:, ~df.columns.duplicated()]
        typed: dict[str, pd.Series] = {}
        for spec in self.schema.columns:
            if spec.name in df.columns:
                typed[spec.name] = self._coerce_feature(df[spec.name], spec)
        if self.schema.target.name in df.columns:
            typed[self.schema.target.name] = self._coerce_target(df[self.schema.target.name])
        out = pd.DataFrame(typed, index=df.index).reset_index(drop=True)
        self.rows += len(out)
        self._typed_columns = out.shape[1]
        for c in out.columns:
            self.dtypes[c] = _wider(self.dtypes.get(c), str(out[c].dtype))
        if len(out) and out.shape[1]:
            self._ranges(out)
            if self._profiler is not None:
                self._profiler.track(out)
            self._hashes.append(row_hashes(out))
        return out

    def _tally_cells(self, column: str, rule: str, cells: pd.Series) -> None:
        """A tally whose examples are the cells as read: a column that came parsed already
        (``reading.iter_typed_batch``) shows ``1.5`` where the file's text was ``'1.50'``, so it
        marks the audit ``typed_examples`` (ingest then reads the file with the exact reader)."""
        if len(cells) and cells.dtype != object:
            self.typed_examples = True
        self._tally(column, rule, cells)

    def _parsed(self, s: pd.Series, parse, name: str) -> pd.Series:
        values, bad = parse(s)
        self._tally(name, "dtype", s[bad])
        self._n_bad[name] = self._n_bad.get(name, 0) + int(bad.sum())
        return values

    def _coerce_feature(self, s: pd.Series, spec: ColumnSpec) -> pd.Series:
        name = spec.name
        if spec.role == "ignore":  # kept as text, whatever it holds; only its presence is checked
            return as_category_str(s)
        if spec.dtype == "datetime":
            return self._parsed(s, parse_datetimes, name)
        if spec.dtype in ("float", "int"):
            num = self._parsed(s, parse_numeric, name)
            if spec.dtype == "int":
                finite = num.notna() & np.isfinite(num)
                self._tally_cells(name, "whole", s[finite & (num != np.round(num))])
                if finite.all():
                    return num.astype("int64")
                # int columns with nulls or infinities stay float64
            return num
        if spec.dtype == "bool":
            b = self._parsed(s, parse_bool, name)
            return b.astype(bool) if b.notna().all() else b
        # category (a text column is ignored: see above)
        cat = as_category_str(s)
        if not spec.other_bucket:  # with an "other" bucket, no value is unseen
            self._tally(name, "unknown_category", cat[cat.notna() & ~cat.isin(set(spec.categories or []))])
        return cat

    def _coerce_target(self, s: pd.Series) -> pd.Series:
        target = self.schema.target
        name = target.name
        if target.is_regression:
            num, _ = parse_numeric(s)
            missing, bad = s.isna(), s.notna() & ~np.isfinite(num)
            self._tally(name, "missing_label", s[missing])
            self._tally(name, "bad_target", s[bad])
            return num.where(np.isfinite(num)).astype("float64")
        classes = target.classes
        int_classes = all(isinstance(c, int) and not isinstance(c, bool) for c in classes)
        missing = s.isna()
        if int_classes:
            num, _ = parse_numeric(s)
            ok = num.notna() & np.isfinite(num) & (num == np.round(num))
            labels = num.where(ok)
            valid = ok & labels.isin([float(c) for c in classes])
        else:
            labels = as_category_str(s)
            valid = labels.isin([str(c) for c in classes])
        self._tally(name, "missing_label", s[missing])
        self._tally_cells(name, "unknown_label", s[~missing & ~valid])
        if len(self._classes) < 2:
            self._classes.update(labels[valid].unique().tolist())
        if int_classes and valid.all():
            return labels.astype("int64")
        return labels

    def _ranges(self, out: pd.DataFrame) -> None:
        """Values outside a numeric feature's min..max (their share is judged per batch)."""
        for spec in self.schema.features:
            if spec.name not in out or spec.dtype not in ("float", "int") or (spec.min is None and spec.max is None):
                continue
            values = out[spec.name]
            finite = values[np.isfinite(values)]
            if spec.min is not None:
                self._tally(spec.name, "below", finite[finite < spec.min], ordered=True)
            if spec.max is not None:
                self._tally(spec.name, "above", finite[finite > spec.max], ordered=True, reverse=True)

    # -- the whole batch ----------------------------------------------------
    @property
    def profile(self):  # -> whylogs DatasetProfileView | None
        """The whylogs profile of the typed rows so far (None before any, or without profiling)."""
        if self._profiler is None or not self._profiler.frames:
            return None
        return self._profiler.view()

    def hashes(self) -> np.ndarray:
        """The uint64 hash of every row (``ratchet.data.rows.row_hashes``), in order."""
        return np.concatenate(self._hashes) if self._hashes else np.zeros(0, dtype=np.uint64)

    def _sorted_hashes(self) -> np.ndarray:
        """``hashes`` sorted, once for both the duplicate count and the digest (a sort of 10M
        hashes is a second)."""
        if self._sorted is None or len(self._sorted) != self.rows:
            self._sorted = np.sort(self.hashes())
        return self._sorted

    def digest(self) -> str:
        from ratchet.data.rows import digest_of_hashes

        names = [c.name for c in self.schema.columns if c.name in self._present]
        names += [self.schema.target.name] if self.schema.target.name in self._present else []
        return digest_of_hashes(names, self._sorted_hashes(), presorted=True)

    def _count(self, column: str, rule: str) -> tuple[int, str]:
        t = self._tallies.get((column, rule))
        return (t.count, t.examples()) if t is not None and t.count else (0, "")

    def violations(self) -> list[Violation]:
        """Everything wrong with the batch, in ``check_batch``'s order."""
        schema, n = self.schema, self.rows
        out = list(self._header or [])
        for spec in schema.columns:
            name = spec.name
            if name not in self._present:
                out.append(Violation(name, "missing_column", f"column {name!r} is in the schema but not in the batch"))
                continue
            k, ex = self._count(name, "dtype")
            if k:
                what = {"datetime": "ISO 8601 dates/times", "bool": "booleans (true/false, yes/no, 1/0)"}.get(spec.dtype, "numbers")
                out.append(Violation(name, "dtype", f"column {name!r}: {k} value(s) are not {what}, e.g. {ex}"))
            k, ex = self._count(name, "whole")
            if k:
                out.append(Violation(name, "dtype", f"column {name!r}: {k} value(s) are not whole numbers, e.g. {ex}"))
            k, ex = self._count(name, "unknown_category")
            if k:
                severity, share = _by_share(k, n, schema.unseen_limit(spec), "max_unseen_share")
                out.append(Violation(
                    name, "unknown_category",
                    f"column {name!r}: {k} value(s) are not among the {len(set(spec.categories or []))} known "
                    f"categories, e.g. {ex} ({share})", severity))
        out += self._target_violations()
        if self._extras and not schema.allow_extra_columns:
            out += [Violation(c, "extra_column", f"column {c!r} is not in the schema (allow_extra_columns is false)")
                    for c in self._extras]
        if n < schema.min_rows:
            out.append(Violation(None, "min_rows", f"batch has {n} row(s); the schema's min_rows is {schema.min_rows}"))
        if n == 0 or self._typed_columns == 0:
            return out
        ordered = self._sorted_hashes()
        dup_rows = n - (1 + int(np.count_nonzero(ordered[1:] != ordered[:-1])))
        if dup_rows / n > schema.max_duplicate_share:
            out.append(_over_share(
                None, "duplicate_rows", dup_rows, n, schema.max_duplicate_share,
                f"{dup_rows} of {n} rows ({dup_rows / n:.1%}) repeat an earlier row; "
                f"the schema's max_duplicate_share is {schema.max_duplicate_share:.1%}"))
        return out + self._profile_violations()

    def _target_violations(self) -> list[Violation]:
        target, out = self.schema.target, []
        name = target.name
        if name not in self._present:
            return [Violation(name, "target_missing", f"target column {name!r} is not in the batch")]
        k, _ = self._count(name, "missing_label")
        if k:
            what = "no target value" if target.is_regression else "no label"
            out.append(Violation(name, "missing_label", f"column {name!r}: {k} row(s) have {what}"))
        if target.is_regression:
            k, ex = self._count(name, "bad_target")
            if k:
                out.append(Violation(name, "bad_target", f"column {name!r}: {k} target value(s) are not "
                                                         f"finite numbers, e.g. {ex}"))
            return out
        k, ex = self._count(name, "unknown_label")
        if k:
            out.append(Violation(
                name, "unknown_label",
                f"column {name!r}: {k} label(s) are not among the schema classes {list(target.classes)}, e.g. {ex}"))
        if len(self._classes) == 1:
            only = next(iter(self._classes))
            int_classes = all(isinstance(c, int) and not isinstance(c, bool) for c in target.classes)
            only = int(only) if int_classes else only
            out.append(Violation(
                name, "single_class",
                f"column {name!r}: every labelled row has class {only!r}; a batch needs at least two classes"))
        return out

    def _profile_violations(self) -> list[Violation]:
        """Null share and infinities per feature, read from the whylogs profile; values out of range."""
        violations: list[Violation] = []
        n = self.rows
        columns = self.profile.get_columns()
        for spec in self.schema.features:
            name = spec.name
            if name not in columns:
                continue
            counts = columns[name].get_metric("counts")
            # cells that failed to parse are null in the typed rows and already reported as dtype violations
            nulls = int(counts.null.value) - self._n_bad.get(name, 0)
            share = nulls / n
            if share > spec.max_null_share:
                violations.append(_over_share(
                    name, "null_share", nulls, n, spec.max_null_share,
                    f"column {name!r}: {nulls} of {n} values ({share:.1%}) are missing; "
                    f"the schema allows {spec.max_null_share:.1%}"))
            if spec.dtype not in ("float", "int"):
                continue
            n_inf = int(counts.inf.value)
            if n_inf:
                violations.append(Violation(name, "not_finite", f"column {name!r}: {n_inf} value(s) are infinite"))
            below, below_ex = self._count(name, "below")
            above, above_ex = self._count(name, "above")
            if not below and not above:
                continue
            # judged on the column's share of rows outside min..max, below and above together
            severity, share_text = _by_share(below + above, n, self.schema.out_of_range_limit(spec), "max_out_of_range_share")
            if below:
                violations.append(Violation(
                    name, "out_of_range",
                    f"column {name!r}: {below} value(s) below the minimum {spec.min:g}, e.g. {below_ex} ({share_text})",
                    severity))
            if above:
                violations.append(Violation(
                    name, "out_of_range",
                    f"column {name!r}: {above} value(s) above the maximum {spec.max:g}, e.g. {above_ex} ({share_text})",
                    severity))
        return violations


# ----------------------------------------------------------------------- checks
def check_batch(df: pd.DataFrame, schema: Schema) -> tuple[pd.DataFrame, list[Violation]]:
    """Coerce ``df`` to the schema's types and list everything wrong with it.

    Returns ``(typed, violations)``. ``typed`` has the schema's columns (features
    and ignored ones) that are present (in schema order) and then the target: float columns as
    float64; int columns as int64 (float64 when they hold nulls); bool as bool
    (pandas ``boolean`` with nulls); categories, and ignored columns, as str (NaN for
    nulls); datetimes as naive UTC ``datetime64[ns]``; the
    target as int64 when the schema's classes are ints, float64 for regression, else str. Cells that
    fail to parse become null. Extra columns are dropped (and are a violation
    unless ``schema.allow_extra_columns``). The batch is acceptable iff no
    violation is ``fatal`` (warnings: unseen categories and out-of-range values under
    their share limits). Duplicate rows are counted by their 64-bit row hashes
    (``ratchet.data.rows``). ``BatchAudit`` does the same for a batch in chunks.
    """
    audit = BatchAudit(schema)
    typed = audit.add(df)
    return typed, audit.violations()


def validate_file(path: Path | str, schema: Schema) -> pd.DataFrame:
    """``read_batch`` + ``check_batch``; the typed frame, or ``BatchRejected`` with every violation
    (warnings included) when one of them is an error."""
    typed, violations = check_batch(read_batch(path, schema), schema)
    if any(v.fatal for v in violations):
        raise BatchRejected(violations, source=str(path))
    return typed
