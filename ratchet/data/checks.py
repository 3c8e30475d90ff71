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

import codecs
import csv
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ratchet.core.files import CSV_SUFFIXES, PARQUET_SUFFIXES
from ratchet.core.schema import ColumnSpec, Schema
from ratchet.data.datetimes import parse_datetimes

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
def _encoding_error(path: Path) -> BatchRejected:
    """The first byte of ``path`` that is not UTF-8, found in blocks (the file may be large)."""
    offset, lines, pending = 0, 0, b""  # bytes of ``pending`` start at ``offset``
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 20)
            data = pending + block
            try:
                _, used = codecs.utf_8_decode(data, "strict", not block)
            except UnicodeDecodeError as e:
                at = offset + e.start
                line = lines + data[: e.start].count(b"\n") + 1
                return _reject(
                    "encoding",
                    f"file {path.name} is not valid UTF-8: byte 0x{data[e.start]:02x} on line {line} "
                    f"(offset {at}); re-export it as UTF-8",
                    path,
                )
            lines += data[:used].count(b"\n")
            offset, pending = offset + used, data[used:]
            if not block:
                raise AssertionError(f"{path} decodes as UTF-8")  # only called after a decode error


def _scan_csv(path: Path) -> None:
    """Reject a CSV whose rows do not all have the header's fields, or whose header repeats a
    name. Read with the csv module, row by row: pandas raises on rows with too many fields but
    silently pads rows with too few."""
    header: list[str] | None = None
    ragged: list[tuple[int, int]] = []
    n_ragged = 0
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, strict=True)
            try:
                for row in reader:
                    if not row:  # blank line; pandas skips these too
                        continue
                    if header is None:
                        header = row
                    elif len(row) != len(header):
                        n_ragged += 1
                        if len(ragged) < _MAX_EXAMPLES:
                            ragged.append((reader.line_num, len(row)))
            except csv.Error as e:
                raise _reject(
                    "malformed_csv", f"file {path.name} is not valid CSV: {e} (near line {reader.line_num})", path
                ) from None
    except UnicodeDecodeError:
        raise _encoding_error(path) from None
    if header is None:
        raise _reject("no_rows", f"file {path.name} has no header row and no data", path)
    if n_ragged:
        where = ", ".join(f"line {ln} has {k}" for ln, k in ragged)
        raise _reject(
            "malformed_csv",
            f"file {path.name}: {n_ragged} row(s) do not have the header's {len(header)} fields "
            f"({where}{', ...' if n_ragged > _MAX_EXAMPLES else ''})",
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


def _csv_chunks(path: Path, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    _scan_csv(path)
    try:
        options = dict(dtype=str, keep_default_na=False, na_values=NA_TOKENS, skip_blank_lines=True,
                       encoding="utf-8-sig")
        if chunk_rows is None:
            yield pd.read_csv(path, **options)
            return
        with pd.read_csv(path, chunksize=chunk_rows, **options) as reader:
            yield from reader
    except (pd.errors.ParserError, ValueError) as e:
        raise _reject("malformed_csv", f"file {path.name} is not valid CSV: {e}", path) from None


def _parquet_chunks(path: Path, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        if chunk_rows is None or pf.metadata.num_rows <= chunk_rows:
            chunks = iter([pd.read_parquet(path)])
        else:  # record batches under the file's schema (its pandas metadata: the same dtypes)
            chunks = (pa.Table.from_batches([b], schema=pf.schema_arrow).to_pandas()
                      for b in pf.iter_batches(batch_size=chunk_rows))
        for df in chunks:
            yield df.rename(columns=str).reset_index(drop=True)
    except BatchRejected:
        raise
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise _reject("unreadable_file", f"file {path.name} is not a readable Parquet file: {e}", path) from None


def _check_file(path: Path, schema: Schema) -> None:
    """Reject a path that is no batch file: missing, not a file, an unknown suffix, empty, too large."""
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


def iter_batch(path: Path | str, schema: Schema, chunk_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """A batch file's rows in frames of at most ``chunk_rows`` rows (None: one frame), as
    ``read_batch`` reads them; ``BatchRejected`` (raised before the first frame, or by the
    reader of a corrupt file on the way) for a file that is unusable."""
    path = Path(path)
    _check_file(path, schema)
    reader = _csv_chunks if path.suffix.lower() in CSV_SUFFIXES else _parquet_chunks
    rows = 0
    for df in reader(path, chunk_rows):
        if len(df):
            rows += len(df)
            yield df
    if not rows:
        raise _reject("no_rows", f"file {path.name} has a header but no data rows", path)


def read_batch(path: Path | str, schema: Schema) -> pd.DataFrame:
    """Read a batch file (CSV or Parquet, by suffix); raise ``BatchRejected`` if the file is unusable.

    CSV cells come back as strings (missing cells, and the tokens in ``NA_TOKENS``,
    as NaN); Parquet columns keep their stored types. ``check_batch`` does the typing.
    """
    return next(iter_batch(path, schema))


# ----------------------------------------------------------------------- coercion
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

    if _all_text(s):
        return s.str.strip().where(s.notna(), np.nan).astype(object)
    return s.map(one).astype(object)


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
        self._profiling = profile
        self.profile = None  # merged whylogs DatasetProfileView of the typed rows
        self._hashes: list[np.ndarray] = []
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
        from ratchet.data.profiling import merge_profiles, profile_frame
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
            if self._profiling:
                view = profile_frame(out)
                self.profile = view if self.profile is None else merge_profiles([self.profile, view])
            self._hashes.append(row_hashes(out))
        return out

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
                self._tally(name, "whole", s[finite & (num != np.round(num))])
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
        self._tally(name, "unknown_label", s[~missing & ~valid])
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
    def hashes(self) -> np.ndarray:
        """The uint64 hash of every row (``ratchet.data.rows.row_hashes``), in order."""
        return np.concatenate(self._hashes) if self._hashes else np.zeros(0, dtype=np.uint64)

    def digest(self) -> str:
        from ratchet.data.rows import digest_of_hashes

        names = [c.name for c in self.schema.columns if c.name in self._present]
        names += [self.schema.target.name] if self.schema.target.name in self._present else []
        return digest_of_hashes(names, self.hashes())

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
        hashes = self.hashes()
        dup_rows = n - len(np.unique(hashes))
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
