"""Idempotent intake: a batch whose rows main already holds is a duplicate, on every backend."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ratchet.core.config import DataConfig
from ratchet.data import ingest
from ratchet.data.repository.base import DataRepository
from ratchet.data.rows import content_digest, row_hashes
from ratchet.data.schema_inference import infer_schema
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch, write_batch

CFG = DataConfig()


@pytest.fixture(scope="module")
def batch():
    return generate_batch(0, 300, seed=11)


@pytest.fixture(scope="module")
def schema(batch):
    return infer_schema(batch, DEMO_TARGET)


def _publish(repo: DataRepository, audited: ingest.AuditedBatch, path) -> str:
    branch = ingest.stage_batch(repo, audited, path, CFG)
    ingest.commit_batch(repo, branch, audited)
    return ingest.publish_batch(repo, branch, audited, CFG)


def test_a_new_batch_is_no_duplicate_and_a_published_one_is(repo, batch, schema, tmp_path):
    path = write_batch(batch, tmp_path / "first.csv")
    first = ingest.audit_batch(path, schema)
    assert ingest.find_duplicate(repo, first, CFG) is None
    published = _publish(repo, first, path)

    again = ingest.audit_batch(path, schema)
    assert again.batch_id != first.batch_id and again.digest == first.digest
    dup = ingest.find_duplicate(repo, again, CFG)
    assert dup == ingest.Duplicate(first.batch_id, f"{CFG.batch_prefix}{first.batch_id}.parquet", published)
    assert repo.get_commit(published).metadata["ratchet.digest"] == first.digest


def test_two_ingests_of_one_file_that_both_pass_the_duplicate_check_publish_once(repo, batch, schema, tmp_path):
    """Both checked before either published (the race of two simultaneous ingests): the second
    merge meets the first's digest object, publishes nothing and names the first's commit."""
    path = write_batch(batch, tmp_path / "first.csv")
    a, b = ingest.audit_batch(path, schema), ingest.audit_batch(path, schema)
    assert ingest.find_duplicate(repo, a, CFG) is None and ingest.find_duplicate(repo, b, CFG) is None
    staged = [(x, ingest.stage_batch(repo, x, path, CFG)) for x in (a, b)]
    for x, branch in staged:
        ingest.commit_batch(repo, branch, x)
    published = ingest.publish_batch(repo, staged[0][1], a, CFG)
    head = repo.resolve(CFG.main_branch)
    second = ingest.publish_batch(repo, staged[1][1], b, CFG)
    assert second == ingest.Duplicate(a.batch_id, f"{CFG.batch_prefix}{a.batch_id}.parquet", published)
    assert repo.resolve(CFG.main_branch) == head  # main moved once
    assert repo.list_objects(CFG.main_branch, CFG.batch_prefix) == [f"{CFG.batch_prefix}{a.batch_id}.parquet"]
    assert not {br for _, br in staged} & set(repo.list_branches())


def test_the_same_rows_in_another_file_format_and_order_are_a_duplicate(repo, batch, schema, tmp_path):
    """The digest is of the typed rows, not the file's bytes: a re-export (another name, Parquet
    instead of CSV, rows and columns reordered) still brings nothing main does not hold."""
    path = write_batch(batch, tmp_path / "first.csv")
    first = ingest.audit_batch(path, schema)
    published = _publish(repo, first, path)
    shuffled = batch.sample(frac=1.0, random_state=3)[list(reversed(batch.columns))]
    other = write_batch(shuffled, tmp_path / "export-2024.parquet")
    assert other.read_bytes() != path.read_bytes()
    audited = ingest.audit_batch(other, schema)
    assert audited.ok and audited.digest == first.digest and audited.file_digest != first.file_digest
    assert ingest.find_duplicate(repo, audited, CFG).commit == published


def test_one_row_more_or_less_is_a_new_batch(repo, batch, schema, tmp_path):
    path = write_batch(batch, tmp_path / "first.csv")
    _publish(repo, ingest.audit_batch(path, schema), path)
    fewer = ingest.audit_batch(write_batch(batch.iloc[1:], tmp_path / "fewer.csv"), schema)
    assert ingest.find_duplicate(repo, fewer, CFG) is None


def test_a_batch_published_under_a_file_digest_is_found_by_it(repo, batch, schema, tmp_path):
    """Batch ids written before content digests end with the sha256 of the file's bytes."""
    path = write_batch(batch, tmp_path / "old.csv")
    audited = ingest.audit_batch(path, schema)
    audited = replace(audited, batch_id=ingest.batch_id_for(audited.file_digest))  # as the earlier code named it
    published = _publish(repo, audited, path)
    dup = ingest.find_duplicate(repo, ingest.audit_batch(path, schema), CFG)
    assert dup is not None and dup.batch_id == audited.batch_id and dup.commit == published


def test_a_rejected_batch_is_never_a_duplicate(repo, batch, schema, tmp_path):
    """An extra column is dropped from the typed rows, which then equal a published batch's:
    the batch is still reported as rejected, not waved through as a duplicate."""
    path = write_batch(batch, tmp_path / "first.csv")
    _publish(repo, ingest.audit_batch(path, schema), path)
    extra = ingest.audit_batch(write_batch(batch.assign(zzz=1), tmp_path / "extra.csv"), schema)
    assert not extra.ok
    assert ingest.find_duplicate(repo, extra, CFG) is None


def test_row_hashes_ignore_dtype_column_order_and_index(batch, schema, tmp_path):
    typed = ingest.audit_batch(write_batch(batch, tmp_path / "b.csv"), schema).frame
    h = row_hashes(typed)
    assert h.dtype == np.uint64 and len(np.unique(h)) == len(typed)
    as_float = typed.astype({c: "float64" for c in typed.columns if typed[c].dtype == "int64"})
    assert (row_hashes(as_float) == h).all()  # an int column turns float once a batch has a null
    assert (row_hashes(typed[typed.columns[::-1]].set_index(typed.index + 7)) == h).all()
    changed = typed.copy()
    changed.iloc[0, 0] = changed.iloc[0, 0] + 1
    assert row_hashes(changed)[0] != h[0] and (row_hashes(changed)[1:] == h[1:]).all()
    assert content_digest(changed) != content_digest(typed)
