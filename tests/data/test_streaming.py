"""Ingest in chunks: a batch read, checked, profiled and written chunk by chunk gives the same
verdict, rows, digest and published table as the whole batch at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ratchet.core.config import DataConfig
from ratchet.data import ingest
from ratchet.data.profiling import deserialize_profile, profile_rows
from ratchet.data.repository.embedded import EmbeddedRepository
from ratchet.data.schema_inference import infer_schema
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch, write_batch

CFG = DataConfig()
ROWS, CHUNK = 60_000, 15_000


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """60k rows of the demo's data and a schema inferred from their first 5000."""
    frame = generate_batch(0, ROWS, seed=5)
    schema = infer_schema(frame.iloc[:5000], DEMO_TARGET)
    folder = tmp_path_factory.mktemp("streaming")
    return frame, schema, folder


def _int_column(schema):
    return next(c.name for c in schema.features if c.dtype == "int")


def _float_column(schema):
    return next(c for c in schema.features if c.dtype == "float" and c.max is not None)


def _both(path, schema):
    return ingest.audit_batch(path, schema, chunk_rows=None), ingest.audit_batch(path, schema, chunk_rows=CHUNK)


def _same_report(whole, chunked):
    assert chunked.frame is None and whole.frame is not None
    assert chunked.rows == whole.rows == len(whole.frame)
    assert chunked.digest == whole.digest
    assert [v.to_dict() for v in chunked.violations] == [v.to_dict() for v in whole.violations]
    assert [v.to_dict() for v in chunked.warnings] == [v.to_dict() for v in whole.warnings]


def test_a_clean_batch_in_chunks_publishes_the_same_rows(big, tmp_path):
    frame, schema, _ = big
    frame = frame.copy()
    col = _int_column(schema)
    frame[col] = frame[col].astype("float64")
    frame.loc[ROWS - 10, col] = np.nan  # a null in the last chunk only: the column is float64 over the batch
    frame.loc[ROWS - 1] = frame.loc[3]  # repeats a row of the first chunk
    path = write_batch(frame, tmp_path / "big.csv")
    whole, chunked = _both(path, schema)
    _same_report(whole, chunked)
    assert chunked.ok, chunked.violations
    assert profile_rows(deserialize_profile(chunked.profile)) == ROWS

    repo = EmbeddedRepository.open_or_init(tmp_path / "repo")
    branch = ingest.stage_batch(repo, chunked, path, CFG)
    ingest.commit_batch(repo, branch, chunked)
    ingest.publish_batch(repo, branch, chunked, CFG)
    published = repo.read_dataframe("main", f"{CFG.batch_prefix}{chunked.batch_id}.parquet")
    pd.testing.assert_frame_equal(published, whole.frame)
    assert published[col].dtype == "float64"
    # the same rows read whole: a duplicate of the batch published from chunks
    dup = ingest.find_duplicate(repo, whole, CFG)
    assert dup is not None and dup.batch_id == chunked.batch_id


def test_violations_found_in_different_chunks_are_counted_as_in_the_whole_batch(big, tmp_path):
    frame, schema, _ = big
    frame = frame.astype(object).copy()
    col, num = _int_column(schema), _float_column(schema)
    frame.iloc[-30000:-20000] = frame.iloc[:10000].to_numpy()  # 10 % of the rows repeat the first chunk's
    frame.loc[[5, ROWS - 5], col] = ["abc", "x1"]  # bad cells in the first and the last chunk
    frame.loc[ROWS - 100: ROWS - 1, num.name] = num.max + 1.0  # out of range, all in the last chunk
    path = write_batch(frame, tmp_path / "bad.csv")
    whole, chunked = _both(path, schema)
    _same_report(whole, chunked)
    rules = {v.rule for v in whole.violations + whole.warnings}
    assert {"dtype", "duplicate_rows", "out_of_range"} <= rules and not whole.ok
    dtype = next(v for v in chunked.violations if v.rule == "dtype")
    assert "2 value(s)" in dtype.message and "'abc', 'x1'" in dtype.message


def test_a_parquet_batch_in_chunks_matches_the_whole_file(big, tmp_path):
    frame, schema, _ = big
    path = tmp_path / "big.parquet"
    frame.to_parquet(path, index=False)
    whole, chunked = _both(path, schema)
    _same_report(whole, chunked)
    assert chunked.ok

