"""Parquet written chunk by chunk: a batch of any size in the memory of one chunk."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class ParquetChunks:
    """A Parquet file written a frame at a time, a row group or more per frame, under the first
    frame's schema (its pandas metadata, as ``DataFrame.to_parquet(index=False)`` writes it; a
    column with no values there is typed as text). ``close`` ends the file."""

    def __init__(self, file: Path):
        self.file, self.rows = Path(file), 0
        self._writer: Any = None

    def write(self, df: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            schema = pa.Schema.from_pandas(df, preserve_index=False)
            for i, f in enumerate(schema):
                if pa.types.is_null(f.type):
                    schema = schema.set(i, f.with_type(pa.string()))
            self._writer = pq.ParquetWriter(self.file, schema)
        self._writer.write_table(pa.Table.from_pandas(df, schema=self._writer.schema, preserve_index=False))
        self.rows += len(df)

    def close(self) -> int:
        """End the file; the rows written."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.rows


def write_parquet(file: Path, frames: Iterable[pd.DataFrame]) -> int:
    """Write the frames' rows to one Parquet file (``ParquetChunks``). Returns the rows written."""
    out = ParquetChunks(file)
    try:
        for df in frames:
            out.write(df)
    finally:
        out.close()
    if not out.rows and not out.file.exists():
        raise ValueError("write_parquet needs at least one frame")
    return out.rows
