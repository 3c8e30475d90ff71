"""Read a batch file (CSV or Parquet, by suffix) in chunks, rejecting a file that is unusable.

``read_batch(path, schema)`` and ``iter_batch`` raise ``BatchRejected`` for problems with the
file itself (missing, empty, too large, not UTF-8, malformed CSV, no data rows, unsupported
suffix). CSV cells are read as strings, so a stray ``abc`` in a numeric column is reported by
the audit (``ratchet.data.checks``) rather than silently turning the column into text.

``iter_typed_batch`` is the quick way to the same typed rows (what ingest reads first): pyarrow's
multithreaded CSV reader parses the schema's numeric columns into float64 and reads text columns
as dictionaries (each distinct string once). It gives up, with ``NotExact``, wherever it could
judge a file differently from the exact reader: a cell it cannot parse as a number (the audit
names it), a ragged row, a duplicate header name, a NaN or infinity spelled in a cell, invalid
UTF-8; the caller then reads the file again with ``iter_batch``. Files holding a quote or a NUL
byte get the exact reader's structural scan (``_scan_csv``) first, since pyarrow's parser is more
lenient about stray quotes than the csv module.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ratchet.core.files import CSV_SUFFIXES, PARQUET_SUFFIXES
from ratchet.core.schema import Schema
from ratchet.data.violations import BatchRejected, Violation, reject

_MAX_EXAMPLES = 3  # ragged rows named in a message
# Cells read as missing in CSV files. Deliberately shorter than pandas' default
# list: "None", "n/a"-like words and "-" can be real category values.
NA_TOKENS = ["", "NA", "N/A", "NaN", "nan", "NULL", "null"]


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
                return reject(
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
                raise reject(
                    "malformed_csv", f"file {path.name} is not valid CSV: {e} (near line {reader.line_num})", path
                ) from None
    except UnicodeDecodeError:
        raise _encoding_error(path) from None
    if header is None:
        raise reject("no_rows", f"file {path.name} has no header row and no data", path)
    if n_ragged:
        where = ", ".join(f"line {ln} has {k}" for ln, k in ragged)
        raise reject(
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
        raise reject("malformed_csv", f"file {path.name} is not valid CSV: {e}", path) from None


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
        raise reject("unreadable_file", f"file {path.name} is not a readable Parquet file: {e}", path) from None


class NotExact(Exception):
    """``iter_typed_batch`` met something only the exact reader (``iter_batch``) judges; read the
    file again with it."""


def _header(path: Path) -> list[str]:
    """The CSV's first non-blank row, as the csv module reads it."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            for row in csv.reader(fh, strict=True):
                if row:
                    return row
    except (csv.Error, UnicodeDecodeError) as e:
        raise NotExact(str(e)) from None
    return []


def _has_bytes(path: Path, needles: tuple[bytes, ...]) -> bool:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            if any(n in block for n in needles):
                return True
    return False


def _arrow_types(schema: Schema, header: list[str]) -> dict:
    """The pyarrow type each column is read as: float64 for numbers (and integer class labels),
    a dictionary of strings for categories, text and string labels (each distinct value once),
    plain strings for the rest (booleans, datetimes, extra columns), typed later by the audit."""
    import pyarrow as pa

    numeric, words = pa.float64(), pa.dictionary(pa.int32(), pa.string())
    types = dict.fromkeys(header, pa.string())
    for spec in schema.columns:
        if spec.name in types:
            if spec.role == "ignore" or spec.dtype in ("category", "text"):
                types[spec.name] = words
            elif spec.dtype in ("float", "int"):
                types[spec.name] = numeric
    target = schema.target
    if target.name in types:
        int_classes = not target.is_regression and all(
            isinstance(c, int) and not isinstance(c, bool) for c in target.classes)
        types[target.name] = numeric if target.is_regression or int_classes else words
    return types


def _typed_frame(table, numeric: list[str]) -> pd.DataFrame:
    """A pyarrow chunk as pandas (text columns as ``Categorical``, plain strings as objects with NaN
    for nulls, as pandas' reader gives them); ``NotExact`` for a NaN or infinity a cell spelled out
    (``1e400``, ``NAN``): the exact reader judges those."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in numeric:
        col = table.column(name)
        if pc.any(pc.is_inf(col)).as_py() or pc.any(pc.is_nan(col)).as_py():
            raise NotExact(f"column {name!r} holds a NaN or infinity spelled in a cell")
    df = table.to_pandas()
    for name, field in zip(table.column_names, table.schema, strict=True):
        if field.type == pa.string():
            df[name] = df[name].where(df[name].notna(), np.nan)
    return df


def _arrow_csv_chunks(path: Path, schema: Schema, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    header = _header(path)
    if len(set(header)) != len(header) or "" in header:  # pandas renames these ("Unnamed: 3", "a.1")
        raise NotExact("a header name repeats or is empty")
    quoted = _has_bytes(path, (b'"', b"\0"))
    if quoted:
        _scan_csv(path)  # what only the csv module judges exactly: quotes
    types = _arrow_types(schema, header)
    numeric = [name for name, t in types.items() if t == pa.float64()]
    try:
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=1 << 22),
            parse_options=pa_csv.ParseOptions(newlines_in_values=quoted),
            convert_options=pa_csv.ConvertOptions(column_types=types, null_values=NA_TOKENS, strings_can_be_null=True),
        )
        pending: list = []
        held = 0
        for batch in reader:
            pending.append(batch)
            held += batch.num_rows
            while chunk_rows is not None and held >= chunk_rows:
                table = pa.Table.from_batches(pending, schema=reader.schema)
                yield _typed_frame(table.slice(0, chunk_rows), numeric)
                rest = table.slice(chunk_rows)
                pending, held = rest.to_batches(), rest.num_rows
                del table, rest
        if held:
            yield _typed_frame(pa.Table.from_batches(pending, schema=reader.schema), numeric)
    except pa.ArrowInvalid as e:
        raise NotExact(str(e)) from None


def iter_typed_batch(path: Path | str, schema: Schema, chunk_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """``iter_batch`` with the columns already typed where pyarrow types them as the audit would
    (see the module's docstring): numbers as float64, text as pandas ``Categorical``; the same
    ``BatchRejected`` for an unusable file, ``NotExact`` (possibly after some frames) where only
    ``iter_batch`` can judge the file. Parquet files are read as ``iter_batch`` reads them."""
    path = Path(path)
    _check_file(path, schema)
    if path.suffix.lower() not in CSV_SUFFIXES:
        yield from iter_batch(path, schema, chunk_rows)
        return
    rows = 0
    for df in _arrow_csv_chunks(path, schema, chunk_rows):
        if len(df):
            rows += len(df)
            yield df
    if not rows:
        raise reject("no_rows", f"file {path.name} has a header but no data rows", path)


def _check_file(path: Path, schema: Schema) -> None:
    """Reject a path that is no batch file: missing, not a file, an unknown suffix, empty, too large."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise reject("file_missing", f"file {path} does not exist", path)
    if not path.is_file():
        raise reject("file_missing", f"{path} is not a file", path)
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise reject(
            "unsupported_format",
            f"file {path.name}: unsupported suffix {suffix or '(none)'!r}; use .csv or .parquet",
            path,
        )
    size = path.stat().st_size
    if size == 0:
        raise reject("file_empty", f"file {path.name} is empty (0 bytes)", path)
    limit = schema.max_file_mb * 1024 * 1024
    if size > limit:
        raise reject(
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
        raise reject("no_rows", f"file {path.name} has a header but no data rows", path)


def read_batch(path: Path | str, schema: Schema) -> pd.DataFrame:
    """Read a batch file (CSV or Parquet, by suffix); raise ``BatchRejected`` if the file is unusable.

    CSV cells come back as strings (missing cells, and the tokens in ``NA_TOKENS``,
    as NaN); Parquet columns keep their stored types. ``check_batch`` does the typing.
    """
    return next(iter_batch(path, schema))
