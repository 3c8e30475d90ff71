"""Validate a new data batch against the schema before it can reach main.

Two steps, both driven only by the ``Schema`` (no column is named in code):

* ``read_batch(path, schema)`` reads a CSV or Parquet file and raises
  ``BatchRejected`` for problems with the file itself (missing, empty, too
  large, not UTF-8, malformed CSV, no data rows, unsupported suffix). CSV cells
  are read as strings, so a stray ``abc`` in a numeric column is reported by
  ``check_batch`` rather than silently turning the column into text.
* ``check_batch(df, schema)`` coerces each column to the schema's type and
  returns the typed frame plus every violation it found. Structure (columns,
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

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ratchet.core.schema import ColumnSpec, Schema
from ratchet.data.datetimes import parse_datetimes
from ratchet.data.profiling import profile_frame

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")

# Cells read as missing in CSV files. Deliberately shorter than pandas' default
# list: "None", "n/a"-like words and "-" can be real category values.
NA_TOKENS = ["", "NA", "N/A", "NaN", "nan", "NULL", "null"]

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})
_MAX_EXAMPLES = 3
# a share limit (nulls, duplicates, unseen categories, out-of-range values) is passed when a batch
# of its size drawn at the limit's rate would hold as many offending rows with probability under this
SHARE_ALPHA = 0.001
_BAD = object()  # marks a cell that failed to parse


@dataclass
class Violation:
    """One finding about a batch. ``column`` is None for file- and row-level rules.

    ``severity`` ``error`` rejects the batch; ``warning`` (unseen categories or out-of-range
    values under their share limit) is reported and rejects nothing. ``to_dict`` keeps the
    three keys of the report's lists (``violations`` holds errors, ``warnings`` the rest)."""

    column: str | None
    rule: str
    message: str
    severity: str = "error"

    @property
    def fatal(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["severity"]
        return d

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}" if self.fatal else f"[{self.rule}, {self.severity}] {self.message}"


class BatchRejected(Exception):
    def __init__(self, violations: list[Violation], source: str | None = None):
        if not violations:
            raise ValueError("BatchRejected needs at least one violation")
        self.violations = list(violations)
        self.source = source
        head = f"batch {source} rejected" if source else "batch rejected"
        lines = "\n".join(f"  - {v}" for v in self.violations)
        super().__init__(f"{head}: {len(self.violations)} violation(s)\n{lines}")

    @property
    def rules(self) -> list[str]:
        return [v.rule for v in self.violations]


def _reject(rule: str, message: str, path: Path, column: str | None = None) -> BatchRejected:
    return BatchRejected([Violation(column, rule, message)], source=str(path))


# ----------------------------------------------------------------------- reading
def _read_csv(path: Path, raw: bytes) -> pd.DataFrame:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise _reject(
            "encoding",
            f"file {path.name} is not valid UTF-8: byte 0x{raw[e.start]:02x} on line {line} "
            f"(offset {e.start}); re-export it as UTF-8",
            path,
        ) from None

    # Pre-scan with the csv module: pandas raises on rows with too many fields but
    # silently pads rows with too few, so count the fields of every row here.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    ragged: list[tuple[int, int]] = []
    try:
        for row in reader:
            if not row:  # blank line; pandas skips these too
                continue
            if header is None:
                header = row
            elif len(row) != len(header):
                ragged.append((reader.line_num, len(row)))
    except csv.Error as e:
        raise _reject(
            "malformed_csv", f"file {path.name} is not valid CSV: {e} (near line {reader.line_num})", path
        ) from None
    if header is None:
        raise _reject("no_rows", f"file {path.name} has no header row and no data", path)
    if ragged:
        where = ", ".join(f"line {ln} has {k}" for ln, k in ragged[:_MAX_EXAMPLES])
        raise _reject(
            "malformed_csv",
            f"file {path.name}: {len(ragged)} row(s) do not have the header's {len(header)} fields "
            f"({where}{', ...' if len(ragged) > _MAX_EXAMPLES else ''})",
            path,
        )
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise BatchRejected(
            [
                Violation(
                    h, "duplicate_column", f"column {h!r} appears {header.count(h)} times in the header"
                )
                for h in dup
            ],
            source=str(path),
        )
    try:
        return pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_values=NA_TOKENS, skip_blank_lines=True
        )
    except (pd.errors.ParserError, ValueError) as e:
        raise _reject("malformed_csv", f"file {path.name} is not valid CSV: {e}", path) from None


def read_batch(path: Path | str, schema: Schema) -> pd.DataFrame:
    """Read a batch file (CSV or Parquet, by suffix); raise ``BatchRejected`` if the file is unusable.

    CSV cells come back as strings (missing cells, and the tokens in ``NA_TOKENS``,
    as NaN); Parquet columns keep their stored types. ``check_batch`` does the typing.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise _reject("file_missing", f"file {path} does not exist", path)
    if not path.is_file():
        raise _reject("file_missing", f"{path} is not a file", path)
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise _reject(
            "unsupported_format",
            f"file {path.name}: unsupported suffix {suffix or '(none)'!r}; use .csv or .parquet",
            path,
        )
    size = path.stat().st_size
    if size == 0:
        raise _reject("file_empty", f"file {path.name} is empty (0 bytes)", path)
    limit = schema.max_file_mb * 1024 * 1024
    if size > limit:
        raise _reject(
            "file_too_large",
            f"file {path.name} is {size / 2**20:.2f} MiB, over the schema's max_file_mb of {schema.max_file_mb} MiB",
            path,
        )

    if suffix in CSV_SUFFIXES:
        df = _read_csv(path, path.read_bytes())
    else:
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise _reject(
                "unreadable_file", f"file {path.name} is not a readable Parquet file: {e}", path
            ) from None
        df = df.rename(columns=str)
    if len(df) == 0:
        raise _reject("no_rows", f"file {path.name} has a header but no data rows", path)
    return df


# ----------------------------------------------------------------------- coercion
def _strip(s: pd.Series) -> pd.Series:
    return s.map(lambda x: x.strip() if isinstance(x, str) else x)


def parse_numeric(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(float values, mask of non-null cells that are not numbers)."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        num = s.astype("float64")
    else:
        num = pd.to_numeric(_strip(s), errors="coerce").astype("float64")
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

    return s.map(one).astype(object)


def _examples(values: pd.Series) -> str:
    """Up to three distinct values: text quoted (``'abc'``), numbers bare (``-5.0``)."""
    uniq = list(dict.fromkeys(repr(v) if isinstance(v, str) else str(v) for v in values))
    shown = ", ".join(uniq[:_MAX_EXAMPLES])
    return shown + (", ..." if len(uniq) > _MAX_EXAMPLES else "")


def _share(k: int, n: int) -> str:
    return f"{k / n:.1%}" if n else "0%"


def over_limit(k: int, n: int, limit: float) -> bool:
    """Whether ``k`` rows of ``n`` are over a share ``limit`` beyond sampling noise: a batch of
    ``n`` rows drawn at the limit's rate holds ``k`` or more with probability under
    ``SHARE_ALPHA`` (one-sided binomial test). So a 100-row batch may hold 3 rows where the
    limit is 1 %, and with a limit of 0 one row is over it."""
    if n <= 0 or k / n <= limit:
        return False
    return float(stats.binom.sf(k - 1, n, limit)) < SHARE_ALPHA


def _by_share(k: int, n: int, limit: float, name: str) -> tuple[str, str]:
    """(severity, what the message adds) for ``k`` offending rows of ``n`` under a share limit."""
    if over_limit(k, n, limit):
        return "error", f"{_share(k, n)} of the rows, over the {name} of {limit:.1%}"
    if n and k / n > limit:
        return "warning", f"{_share(k, n)} of the rows, over the {name} of {limit:.1%} by no more than chance in {n} rows: not rejected"
    return "warning", f"{_share(k, n)} of the rows, within the {name} of {limit:.1%}: not rejected"


def _parsed(s: pd.Series, parse, what: str, name: str, violations: list[Violation]) -> tuple[pd.Series, int]:
    """``parse(s)`` (values, mask of bad cells), a dtype violation naming the bad cells, their count."""
    values, bad = parse(s)
    n_bad = int(bad.sum())
    if n_bad:
        violations.append(
            Violation(name, "dtype", f"column {name!r}: {n_bad} value(s) are not {what}, e.g. {_examples(s[bad])}")
        )
    return values, n_bad


def _coerce_feature(
    s: pd.Series, spec: ColumnSpec, violations: list[Violation], unseen_limit: float = 0.0
) -> tuple[pd.Series, int]:
    """Typed column and the number of cells that failed to parse (they become null)."""
    name = spec.name
    if spec.role == "ignore":  # kept as text, whatever it holds; only its presence is checked
        return as_category_str(s), 0
    if spec.dtype == "datetime":
        return _parsed(s, parse_datetimes, "ISO 8601 dates/times", name, violations)
    if spec.dtype in ("float", "int"):
        num, n_bad = _parsed(s, parse_numeric, "numbers", name, violations)
        if spec.dtype == "int":
            finite = num.notna() & np.isfinite(num)
            frac = finite & (num != np.round(num))
            if frac.any():
                violations.append(
                    Violation(
                        name,
                        "dtype",
                        f"column {name!r}: {int(frac.sum())} value(s) are not whole numbers, "
                        f"e.g. {_examples(s[frac])}",
                    )
                )
            if finite.all():
                return num.astype("int64"), n_bad
            # int columns with nulls or infinities stay float64
        return num, n_bad
    if spec.dtype == "bool":
        b, n_bad = _parsed(s, parse_bool, "booleans (true/false, yes/no, 1/0)", name, violations)
        return (b.astype(bool) if b.notna().all() else b), n_bad
    # category (a text column is ignored: see above)
    cat = as_category_str(s)
    allowed = set(spec.categories or [])
    unknown = cat.notna() & ~cat.isin(allowed)
    if unknown.any() and not spec.other_bucket:  # with an "other" bucket, no value is unseen
        k = int(unknown.sum())
        severity, share = _by_share(k, len(s), unseen_limit, "max_unseen_share")
        violations.append(
            Violation(
                name,
                "unknown_category",
                f"column {name!r}: {k} value(s) are not among the "
                f"{len(allowed)} known categories, e.g. {_examples(cat[unknown])} ({share})",
                severity,
            )
        )
    return cat, 0


def _coerce_number_target(s: pd.Series, name: str, violations: list[Violation]) -> pd.Series:
    """A regression target: float64; a missing, non-numeric or infinite value is a violation."""
    num, _ = parse_numeric(s)
    missing, bad = s.isna(), s.notna() & ~np.isfinite(num)
    if missing.any():
        violations.append(
            Violation(name, "missing_label", f"column {name!r}: {int(missing.sum())} row(s) have no target value")
        )
    if bad.any():
        violations.append(
            Violation(name, "bad_target", f"column {name!r}: {int(bad.sum())} target value(s) are not "
                      f"finite numbers, e.g. {_examples(s[bad])}")
        )
    return num.where(np.isfinite(num)).astype("float64")


def _coerce_target(s: pd.Series, schema: Schema, violations: list[Violation]) -> pd.Series:
    name = schema.target.name
    if schema.target.is_regression:
        return _coerce_number_target(s, name, violations)
    classes = schema.target.classes
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
    if missing.any():
        violations.append(
            Violation(name, "missing_label", f"column {name!r}: {int(missing.sum())} row(s) have no label")
        )
    unknown = ~missing & ~valid
    if unknown.any():
        violations.append(
            Violation(
                name,
                "unknown_label",
                f"column {name!r}: {int(unknown.sum())} label(s) are not among the schema classes "
                f"{list(classes)}, e.g. {_examples(s[unknown])}",
            )
        )
    present = labels[valid].unique()
    if valid.any() and len(present) < 2:
        only = present[0]
        only = int(only) if int_classes else only
        violations.append(
            Violation(
                name,
                "single_class",
                f"column {name!r}: every labelled row has class {only!r}; a batch needs at least two classes",
            )
        )
    if int_classes and valid.all():
        return labels.astype("int64")
    return labels


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
    their share limits).
    """
    violations: list[Violation] = []
    if not all(isinstance(c, str) for c in df.columns):
        df = df.rename(columns=str)
    dup_mask = df.columns.duplicated()
    for name in sorted(set(df.columns[dup_mask])):
        violations.append(
            Violation(name, "duplicate_column", f"column {name!r} appears more than once in the batch")
        )
    df = df.loc[:, ~dup_mask]
    n = len(df)

    typed: dict[str, pd.Series] = {}
    n_bad: dict[str, int] = {}
    for spec in schema.columns:
        if spec.name not in df.columns:
            violations.append(
                Violation(
                    spec.name, "missing_column", f"column {spec.name!r} is in the schema but not in the batch"
                )
            )
            continue
        typed[spec.name], n_bad[spec.name] = _coerce_feature(
            df[spec.name], spec, violations, schema.unseen_limit(spec)
        )

    target = schema.target.name
    if target not in df.columns:
        violations.append(
            Violation(target, "target_missing", f"target column {target!r} is not in the batch")
        )
    else:
        typed[target] = _coerce_target(df[target], schema, violations)

    known = {c.name for c in schema.columns} | {target}
    extras = [c for c in df.columns if c not in known]
    if extras and not schema.allow_extra_columns:
        for c in extras:
            violations.append(
                Violation(
                    c, "extra_column", f"column {c!r} is not in the schema (allow_extra_columns is false)"
                )
            )

    out = pd.DataFrame(typed, index=df.index).reset_index(drop=True)
    if n < schema.min_rows:
        violations.append(
            Violation(None, "min_rows", f"batch has {n} row(s); the schema's min_rows is {schema.min_rows}")
        )
    if n == 0 or out.shape[1] == 0:
        return out, violations

    dup_rows = int(out.duplicated().sum())
    if dup_rows / n > schema.max_duplicate_share:
        fatal = over_limit(dup_rows, n, schema.max_duplicate_share)
        violations.append(
            Violation(
                None,
                "duplicate_rows",
                f"{dup_rows} of {n} rows ({dup_rows / n:.1%}) repeat an earlier row; "
                f"the schema's max_duplicate_share is {schema.max_duplicate_share:.1%}"
                + ("" if fatal else f" (not rejected: no more than chance in {n} rows)"),
                "error" if fatal else "warning",
            )
        )

    violations.extend(_profile_checks(out, schema, n_bad))
    return out, violations


def _profile_checks(out: pd.DataFrame, schema: Schema, n_bad: dict[str, int]) -> list[Violation]:
    """Null share, infinities and min/max per feature, read from a whylogs profile of ``out``."""
    violations: list[Violation] = []
    n = len(out)
    view = profile_frame(out)
    columns = view.get_columns()
    for spec in schema.features:
        name = spec.name
        if name not in columns:
            continue
        col = columns[name]
        counts = col.get_metric("counts")
        # cells that failed to parse are null in ``out`` and already reported as dtype violations
        nulls = int(counts.null.value) - n_bad.get(name, 0)
        share = nulls / n
        if share > spec.max_null_share:
            fatal = over_limit(nulls, n, spec.max_null_share)
            violations.append(
                Violation(
                    name,
                    "null_share",
                    f"column {name!r}: {nulls} of {n} values ({share:.1%}) are missing; "
                    f"the schema allows {spec.max_null_share:.1%}"
                    + ("" if fatal else f" (not rejected: no more than chance in {n} rows)"),
                    "error" if fatal else "warning",
                )
            )
        if spec.dtype not in ("float", "int"):
            continue
        n_inf = int(counts.inf.value)
        if n_inf:
            violations.append(
                Violation(name, "not_finite", f"column {name!r}: {n_inf} value(s) are infinite")
            )
        dist = col.get_metric("distribution")
        if dist is None or dist.kll.value.is_empty():
            continue
        values = out[name]
        finite = values[np.isfinite(values)]
        below = finite[finite < spec.min] if spec.min is not None and dist.min < spec.min else finite[:0]
        above = finite[finite > spec.max] if spec.max is not None and dist.max > spec.max else finite[:0]
        if not len(below) and not len(above):
            continue
        # judged on the column's share of rows outside min..max, below and above together
        severity, share = _by_share(len(below) + len(above), n, schema.out_of_range_limit(spec), "max_out_of_range_share")
        if len(below):
            violations.append(
                Violation(
                    name,
                    "out_of_range",
                    f"column {name!r}: {len(below)} value(s) below the minimum {spec.min:g}, "
                    f"e.g. {_examples(below.sort_values())} ({share})",
                    severity,
                )
            )
        if len(above):
            violations.append(
                Violation(
                    name,
                    "out_of_range",
                    f"column {name!r}: {len(above)} value(s) above the maximum {spec.max:g}, "
                    f"e.g. {_examples(above.sort_values(ascending=False))} ({share})",
                    severity,
                )
            )
    return violations


def validate_file(path: Path | str, schema: Schema) -> pd.DataFrame:
    """``read_batch`` + ``check_batch``; the typed frame, or ``BatchRejected`` with every violation
    (warnings included) when one of them is an error."""
    typed, violations = check_batch(read_batch(path, schema), schema)
    if any(v.fatal for v in violations):
        raise BatchRejected(violations, source=str(path))
    return typed
