"""Progress of long steps (``ratchet.core.progress``): an ingest in chunks tells a listener how
many rows it checked and wrote, step by step, and ends each step; with no listener nothing is
told. And a user's mistake in naming a data file is an error before anything is read
(``ratchet.core.files.check_data_file``). About a second."""

from __future__ import annotations

import errno

import pytest

from ratchet.core import progress
from ratchet.core.files import check_data_file
from ratchet.data import ingest
from ratchet.data.schema_inference import infer_schema
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch, write_batch


@pytest.fixture
def heard():
    told: list[tuple[str, float | None, float, bool]] = []
    previous = progress.listen(lambda step, ended: told.append((step.what, step.total, step.done, ended)))
    yield told
    progress.listen(previous)


def test_an_ingest_in_chunks_reports_its_rows_checked_and_written(tmp_path, heard):
    frame = generate_batch(0, 5_000, seed=3)
    schema = infer_schema(frame.iloc[:2000], DEMO_TARGET)
    path = write_batch(frame, tmp_path / "batch.csv")
    audited = ingest.audit_batch(path, schema, chunk_rows=2_000)
    assert audited.ok and audited.rows == 5_000
    checking = [t for t in heard if t[0] == "checking batch.csv"]
    assert [done for _, _, done, ended in checking if not ended] == [0, 2_000, 4_000, 5_000]
    assert checking[-1][3] and all(total is None for _, total, _, _ in checking)  # a CSV's rows: unknown ahead

    heard.clear()
    assert sum(len(f) for f in ingest.typed_frames(audited)) == 5_000
    assert heard[0] == ("writing batch.csv", 5_000, 0, False) and heard[-1] == ("writing batch.csv", 5_000, 5_000, True)


def test_no_listener_means_nothing_is_told(tmp_path):
    assert progress.listen(None) is None  # (the fixture's listener is not set here)
    with progress.step("work", total=3) as s:
        s.advance(3)
    assert s.done == 3


def test_a_mistaken_data_file_is_an_error_before_any_read(tmp_path):
    (tmp_path / "a-folder.csv").mkdir()
    (tmp_path / "notes.txt").write_text("x\n")
    with pytest.raises(FileNotFoundError) as missing:
        check_data_file(tmp_path / "nope.csv")
    assert missing.value.errno == errno.ENOENT and missing.value.filename == str(tmp_path / "nope.csv")
    with pytest.raises(IsADirectoryError):
        check_data_file(tmp_path / "a-folder.csv")
    with pytest.raises(ValueError, match=r"unknown format '\.txt'; use \.csv or \.parquet"):
        check_data_file(tmp_path / "notes.txt")
    (tmp_path / "ok.parquet").write_bytes(b"PAR1")
    check_data_file(tmp_path / "ok.parquet")  # its content is the checks' business, not this one's
