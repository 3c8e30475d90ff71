"""Row identity: a hash of each row's content, whatever batch, file or dtype it came in.

Two uses: a batch's content digest (``content_digest``: the same rows are the same batch,
whatever the file's name, format, row order or number formatting) and the held-out split
(``ratchet.training.window.split_frame``: a row's side follows from the hash of its features
and label alone, ``Schema.row_key``, so an identical row never sits on both sides, whatever
its id or timestamp, and adding batches moves no old row).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def _canonical(s: pd.Series) -> pd.Series:
    """One representation per value: numbers and booleans as float64, so a column's dtype
    (int64, float64 once some batch has a null; bool or nullable boolean) does not change
    the hash of its rows; -0.0 as 0.0 and every NaN alike; everything else as objects."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        v = s.to_numpy(dtype="float64", na_value=np.nan) + 0.0  # -0.0 + 0.0 == +0.0
        return pd.Series(np.where(np.isnan(v), np.nan, v), index=s.index)
    return s.astype(object)


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A uint64 per row from its values (columns by name, so their order does not count)."""
    canon = pd.DataFrame({c: _canonical(frame[c]) for c in sorted(frame.columns, key=str)}, index=frame.index)
    return pd.util.hash_pandas_object(canon, index=False).to_numpy(dtype=np.uint64)


def content_digest(frame: pd.DataFrame) -> str:
    """sha256 of the column names and the sorted row hashes: the rows as a multiset."""
    return digest_of_hashes(list(frame.columns), row_hashes(frame))


def unit_interval(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A number in [0, 1) per row, from its hash mixed with ``seed`` (pandas' splitmix-style
    ``hash_array`` on uint64): uniform across rows, fixed for a row and a seed."""
    mixed = pd.util.hash_array(row_hashes(frame) ^ np.uint64(seed % 2**64))
    return (mixed >> np.uint64(11)).astype(np.float64) / float(2**53)  # top 53 bits: exact in a float


def digest_of_hashes(columns: list[str], hashes: np.ndarray, presorted: bool = False) -> str:
    """``content_digest`` from the column names and the rows' ``row_hashes`` (in any order;
    ``presorted``: sorted already)."""
    h = hashlib.sha256("\x1f".join(sorted(map(str, columns))).encode())
    h.update((hashes if presorted else np.sort(hashes)).tobytes())
    return h.hexdigest()
