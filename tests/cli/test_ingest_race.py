"""Two `ratchet ingest` of one file at the same moment, as two shell commands would: main takes
the rows once. The duplicate check runs before staging, so both ingests may pass it; the digest
object each ingest branch writes (``ratchet.data.ingest.DIGEST_PREFIX``) makes the second merge
conflict, and that ingest reports ``duplicate``.

Slow (about 2 minutes on two busy cores: six ingests and a Prefect server); the default suite's
check of the same race is ``tests/data/test_ingest.py`` (both backends, in one process)."""

from __future__ import annotations

import json
import subprocess

import pytest

from ratchet.core.settings import Settings
from ratchet.data.repository.embedded import EmbeddedRepository
from tests.cli.conftest import RATCHET

pytestmark = pytest.mark.slow


def test_two_simultaneous_ingests_of_one_file_publish_it_once(project):
    assert project.run("init", "--schema-from", "sample.csv", "--target", "target").returncode == 0
    # one Prefect server for the home, as a user's first command starts it (`ratchet down` stops it);
    # each commit pauses 0.3 s after its steps: both ingests are past their duplicate check
    # before either publishes, the race the digest object settles
    env = project.env(RATCHET_PREFECT_SERVER="persistent", RATCHET_DATA_COMMIT_STEP_DELAY="0.3")
    try:
        for round_, name in enumerate(("batch-1.csv", "batch-2.csv", "sample.csv"), start=1):
            procs = [subprocess.Popen([str(RATCHET), "ingest", name, "--json"], cwd=project.folder, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
            outs = [p.communicate(timeout=300) for p in procs]
            assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
            results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
            statuses = sorted(r["status"] for r in results)
            assert statuses == ["duplicate", "published"], (round_, results)
            published = next(r for r in results if r["status"] == "published")
            duplicate = next(r for r in results if r["status"] == "duplicate")
            assert duplicate["duplicate_of"]["batch_id"] == published["batch_id"], results
            repo = EmbeddedRepository(Settings(home=project.home).data_dir / "ratchet")
            held = repo.list_objects("main", "batches/")
            assert len(held) == round_ and f"batches/{published['batch_id']}.parquet" in held, held
            assert [b for b in repo.list_branches() if b.startswith("ingest-")] == [], repo.list_branches()
    finally:
        project.run("down", timeout=120)
