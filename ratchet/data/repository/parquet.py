"""Parquet written chunk by chunk: a batch of any size in the memory of one chunk."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def write_parquet(file: Path, frames: Iterable[pd.DataFrame]) -> int:
    """Write the frames' rows to one Parquet file, a row group or more per frame, under the
    first frame's schema (its pandas metadata, as ``DataFrame.to_parquet(index=False)`` writes
    it; a column with no values there is typed as text). Returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, rows = None, 0
    try:
        for df in frames:
            if writer is None:
                schema = pa.Schema.from_pandas(df, preserve_index=False)
                for i, f in enumerate(schema):
                    if pa.types.is_null(f.type):
                        schema = schema.set(i, f.with_type(pa.string()))
                writer = pq.ParquetWriter(file, schema)
            writer.write_table(pa.Table.from_pandas(df, schema=writer.schema, preserve_index=False))
            rows += len(df)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError("write_parquet needs at least one frame")
    return rows
