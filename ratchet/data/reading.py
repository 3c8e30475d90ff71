"""Read a batch file (CSV or Parquet, by suffix) in chunks, rejecting a file that is unusable.

``read_batch(path, schema)`` and ``iter_batch`` raise ``BatchRejected`` for problems with the
file itself (missing, empty, too large, not UTF-8, malformed CSV, no data rows, unsupported
suffix). CSV cells are read as strings, so a stray ``abc`` in a numeric column is reported by
the audit (``ratchet.data.checks``) rather than silently turning the column into text.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path

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
