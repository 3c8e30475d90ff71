"""The promotion ledger on Postgres, as the cluster profile resolves it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ratchet.promotion.ledger import Entry, Ledger
from tests.conftest import CONFIG_FILES, ROOT

pytestmark = pytest.mark.postgres

WRITER = textwrap.dedent(
    """
    import sys
    from ratchet.promotion.ledger import Entry, Ledger
    url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ledger = Ledger(url)
    for i in range(n):
        ledger.append(Entry(action="traffic", trigger=who, model="m", traffic=i / n, evidence={"i": i}))
    ledger.close()
    """
)


@pytest.fixture
def cluster_ledger(pg_database, tmp_path, monkeypatch):
    """The ledger of a context built under the cluster profile, from RATCHET_POSTGRES_URL."""
    from ratchet.runtime.context import load_context

    monkeypatch.setenv("RATCHET_PROFILE", "cluster")
    monkeypatch.setenv("RATCHET_POSTGRES_URL", pg_database.url().replace("+psycopg", ""))
    monkeypatch.delenv("RATCHET_LEDGER_URL", raising=False)
    ctx = load_context(CONFIG_FILES, home=str(tmp_path / "home"))
    yield ctx.ledger
    ctx.ledger.close()


def test_ledger_appends_and_reads_back_on_postgres(cluster_ledger, pg_database):
    ledger = cluster_ledger
    assert ledger.url == pg_database.url()  # the profile named the driver: postgresql+psycopg
    first = ledger.append(Entry(action="promote", trigger="test", model="m", from_version=None,
                                to_version="1", data_commit="c0ffee", evidence={"p_value": 0.01, "rows": [1, 2]}))
    second = ledger.append(Entry(action="rollback", trigger="test", model="m", from_version="1", to_version=None))
    assert second.id > first.id and second.ts >= first.ts
    # a second client (another process on the cluster) reads the same history
    other = Ledger(pg_database.url())
    history = other.history()
    other.close()
    assert [(e.action, e.to_version, e.evidence) for e in history] == [
        ("promote", "1", {"p_value": 0.01, "rows": [1, 2]}),
        ("rollback", None, {}),
    ]
    assert [e.action for e in ledger.history(limit=1)] == ["rollback"]
    # and it is Postgres that holds it
    assert pg_database.query("select count(*) from ratchet_ledger") == [(2,)]


def test_two_processes_append_to_one_ledger(cluster_ledger, pg_database):
    cluster_ledger.append(Entry(action="keep", trigger="setup", model="m"))  # creates the table
    n = 25
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, pg_database.url(), who, str(n)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for who in ("worker-a", "worker-b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    reader = Ledger(pg_database.url())
    history = reader.history()
    reader.close()
    assert len(history) == 1 + 2 * n
    assert len({e.id for e in history}) == len(history)
    for who in ("worker-a", "worker-b"):
        mine = [e.evidence["i"] for e in history if e.trigger == who]
        assert mine == list(range(n)), who  # each writer's entries, complete and in its order
