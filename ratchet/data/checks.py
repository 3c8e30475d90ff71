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

``validate_file`` does both and raises ``BatchRejected`` when anything is wrong.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ratchet.core.schema import ColumnSpec, Schema
from ratchet.data.profiling import profile_frame

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")

# Cells read as missing in CSV files. Deliberately shorter than pandas' default
# list: "None", "n/a"-like words and "-" can be real category values.
NA_TOKENS = ["", "NA", "N/A", "NaN", "nan", "NULL", "null"]

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}
_MAX_EXAMPLES = 3
_BAD = object()  # marks a cell that failed to parse


@dataclass
class Violation:
    """One reason a batch is rejected. ``column`` is None for file- and row-level rules."""

    column: str | None
    rule: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


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
        if key in _TRUE:
            return True
        if key in _FALSE:
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


def _coerce_feature(s: pd.Series, spec: ColumnSpec, violations: list[Violation]) -> tuple[pd.Series, int]:
    """Typed column and the number of cells that failed to parse (they become null)."""
    name = spec.name
    if spec.dtype in ("float", "int"):
        num, bad = parse_numeric(s)
        n_bad = int(bad.sum())
        if n_bad:
            violations.append(
                Violation(
                    name,
                    "dtype",
                    f"column {name!r}: {n_bad} value(s) are not numbers, e.g. {_examples(s[bad])}",
                )
            )
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
        b, bad = parse_bool(s)
        n_bad = int(bad.sum())
        if n_bad:
            violations.append(
                Violation(
                    name,
                    "dtype",
                    f"column {name!r}: {n_bad} value(s) are not booleans (true/false, yes/no, 1/0), "
                    f"e.g. {_examples(s[bad])}",
                )
            )
        return (b.astype(bool) if b.notna().all() else b), n_bad
    # category
    cat = as_category_str(s)
    allowed = set(spec.categories or [])
    unknown = cat.notna() & ~cat.isin(allowed)
    if unknown.any():
        violations.append(
            Violation(
                name,
                "unknown_category",
                f"column {name!r}: {int(unknown.sum())} value(s) are not among the "
                f"{len(allowed)} known categories, e.g. {_examples(cat[unknown])}",
            )
        )
    return cat, 0


def _coerce_target(s: pd.Series, schema: Schema, violations: list[Violation]) -> pd.Series:
    name = schema.target.name
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

    Returns ``(typed, violations)``. ``typed`` has the schema's feature columns
    that are present (in schema order) and then the target: float columns as
    float64; int columns as int64 (float64 when they hold nulls); bool as bool
    (pandas ``boolean`` with nulls); categories as str (NaN for nulls); the
    target as int64 when the schema's classes are ints, else str. Cells that
    fail to parse become null. Extra columns are dropped (and are a violation
    unless ``schema.allow_extra_columns``). The batch is acceptable iff
    ``violations`` is empty.
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
        typed[spec.name], n_bad[spec.name] = _coerce_feature(df[spec.name], spec, violations)

    target = schema.target.name
    if target not in df.columns:
        violations.append(
            Violation(target, "target_missing", f"target column {target!r} is not in the batch")
        )
    else:
        typed[target] = _coerce_target(df[target], schema, violations)

    known = set(schema.feature_names) | {target}
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
        violations.append(
            Violation(
                None,
                "duplicate_rows",
                f"{dup_rows} of {n} rows ({dup_rows / n:.1%}) repeat an earlier row; "
                f"the schema's max_duplicate_share is {schema.max_duplicate_share:.1%}",
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
    for spec in schema.columns:
        name = spec.name
        if name not in columns:
            continue
        col = columns[name]
        counts = col.get_metric("counts")
        # cells that failed to parse are null in ``out`` and already reported as dtype violations
        nulls = int(counts.null.value) - n_bad.get(name, 0)
        share = nulls / n
        if share > spec.max_null_share:
            violations.append(
                Violation(
                    name,
                    "null_share",
                    f"column {name!r}: {nulls} of {n} values ({share:.1%}) are missing; "
                    f"the schema allows {spec.max_null_share:.1%}",
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
        if spec.min is not None and dist.min < spec.min:
            below = finite[finite < spec.min]
            if len(below):
                violations.append(
                    Violation(
                        name,
                        "out_of_range",
                        f"column {name!r}: {len(below)} value(s) below the minimum {spec.min:g}, "
                        f"e.g. {_examples(below.sort_values())}",
                    )
                )
        if spec.max is not None and dist.max > spec.max:
            above = finite[finite > spec.max]
            if len(above):
                violations.append(
                    Violation(
                        name,
                        "out_of_range",
                        f"column {name!r}: {len(above)} value(s) above the maximum {spec.max:g}, "
                        f"e.g. {_examples(above.sort_values(ascending=False))}",
                    )
                )
    return violations


def validate_file(path: Path | str, schema: Schema) -> pd.DataFrame:
    """``read_batch`` + ``check_batch``; the typed frame, or ``BatchRejected`` with every violation."""
    typed, violations = check_batch(read_batch(path, schema), schema)
    if violations:
        raise BatchRejected(violations, source=str(path))
    return typed
