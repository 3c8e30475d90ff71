"""The ledger's hash chain: changes made behind the ledger's back (raw SQL through another
connection) are found by ``Ledger.verify`` and by ``ratchet history --verify``, on SQLite
and on Postgres; concurrent writers never fork the chain; an old ledger is upgraded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from ratchet.promotion.ledger import GENESIS, Entry, Ledger
from tests.conftest import ROOT
from tests.postgres.conftest import pg_database, pg_server  # noqa: F401 - the Postgres fixtures

RATCHET = Path(sys.executable).parent / "ratchet"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
CONTENT = ("ts", "action", "trigger", "model", "from_version", "to_version", "data_commit", "traffic",
           "evidence", "prev_hash", "hash")
WRITER = textwrap.dedent(
    """
    import sys
    from ratchet.promotion.ledger import Entry, Ledger
    url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ledger = Ledger(url)
    for i in range(n):
        ledger.append(Entry(action="traffic", trigger=who, model="m", traffic=i / 3, evidence={"i": i, "p": i / 7}))
    ledger.close()
    """
)


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'ledger.db'}"
    return request.getfixturevalue("pg_database").url()


@pytest.fixture
def ledger(url, tmp_path):
    (tmp_path / "home").mkdir(exist_ok=True)
    led = Ledger(url)
    # floats that do not survive a careless text round trip, nested evidence, None fields
    led.append(Entry(action="promote", trigger="gate", model="m", to_version="1", data_commit="c0ffee",
                     evidence={"p_value": 0.1 + 0.2, "rows": [1, 2.5e-17], "note": "é"}))
    for i in range(2, 6):
        led.append(Entry(action="traffic", trigger="canary", model="m", from_version="1", to_version=str(i),
                         traffic=1 / 3 * i, evidence={"i": i}))
    yield led
    led.close()


def raw(url: str, sql: str, **params) -> list:
    """SQL through a connection of its own: not the ledger's."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            res = conn.execute(sa.text(sql), params)
            return res.mappings().all() if res.returns_rows else []
    finally:
        engine.dispose()


def cli_verify(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in __import__("os").environ.items() if k != "RATCHET_DEBUG"}
    env.update(RATCHET_HOME=str(tmp_path / "home"), RATCHET_LEDGER_URL=url)
    return subprocess.run([str(RATCHET), "history", "--verify", *extra], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_an_untouched_chain_verifies_after_the_round_trip(ledger, url, tmp_path):
    check = Ledger(url).verify()  # a fresh client: everything read back from the database
    assert check.ok and check.entries == 5 and check.bad_id is None, check
    entries = ledger.history()
    assert entries[0].prev_hash == GENESIS
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert entries[0].evidence["p_value"] == 0.1 + 0.2
    out = cli_verify(url, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ledger intact: 5 entries"
    as_json = json.loads(cli_verify(url, tmp_path, "--json").stdout)
    assert as_json["ok"] is True and as_json["entries"] == 5 and as_json["head"] == entries[-1].hash


def test_an_edited_row_is_named(ledger, url, tmp_path):
    raw(url, "UPDATE ratchet_ledger SET to_version = '9' WHERE id = 3")
    check = ledger.verify()
    assert not check.ok and check.bad_id == 3 and "changed" in check.reason, check
    out = cli_verify(url, tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip() == f"ledger entry 3: {check.reason}"
    as_json = json.loads(cli_verify(url, tmp_path, "--json").stdout)
    assert as_json["bad_id"] == 3 and as_json["error"].startswith("ledger entry 3:")


def test_a_float_edited_in_its_last_digit_is_found(ledger, url):
    row = raw(url, "SELECT traffic FROM ratchet_ledger WHERE id = 4")[0]
    raw(url, "UPDATE ratchet_ledger SET traffic = :t WHERE id = 4", t=row["traffic"] + 1e-15)
    check = ledger.verify()
    assert (check.ok, check.bad_id) == (False, 4), check


def test_a_removed_row_is_named_by_the_entry_after_it(ledger, url, tmp_path):
    raw(url, "DELETE FROM ratchet_ledger WHERE id = 2")
    check = ledger.verify()
    assert not check.ok and check.bad_id == 3, check
    assert check.reason == "it does not follow entry 1: an entry between them was removed or changed"
    out = cli_verify(url, tmp_path)
    assert (out.returncode, out.stderr.strip()) == (1, f"ledger entry 3: {check.reason}")


def test_removing_the_first_or_the_last_entries_is_found(ledger, url):
    raw(url, "DELETE FROM ratchet_ledger WHERE id >= 4")  # the tail: the head remembers 5 entries
    check = ledger.verify()
    assert not check.ok and check.bad_id == 3, check
    assert "2 entries after it are missing" in check.reason and "ending at id 5" in check.reason
    raw(url, "DELETE FROM ratchet_ledger WHERE id = 1")
    check = ledger.verify()
    assert (check.bad_id, check.reason) == (2, "it does not follow the start of the ledger: an entry between them was removed or changed")


def test_swapped_rows_are_found_as_reordered(ledger, url, tmp_path):
    a, b = (raw(url, "SELECT * FROM ratchet_ledger WHERE id = :i", i=i)[0] for i in (2, 4))
    sets = ", ".join(f"{c} = :{c}" for c in CONTENT)
    raw(url, f"UPDATE ratchet_ledger SET {sets} WHERE id = 2", **{c: b[c] for c in CONTENT})
    raw(url, f"UPDATE ratchet_ledger SET {sets} WHERE id = 4", **{c: a[c] for c in CONTENT})
    check = ledger.verify()
    assert not check.ok and check.bad_id == 2 and "reordered" in check.reason, check
    out = cli_verify(url, tmp_path)
    assert out.returncode == 1 and out.stderr.startswith("ledger entry 2: ") and "reordered" in out.stderr


def test_swapped_contents_under_their_old_hashes_are_found_as_reordered(ledger, url):
    data = CONTENT[:-2]  # the fields, not the hashes
    a, b = (raw(url, "SELECT * FROM ratchet_ledger WHERE id = :i", i=i)[0] for i in (2, 4))
    sets = ", ".join(f"{c} = :{c}" for c in data)
    raw(url, f"UPDATE ratchet_ledger SET {sets} WHERE id = 2", **{c: b[c] for c in data})
    raw(url, f"UPDATE ratchet_ledger SET {sets} WHERE id = 4", **{c: a[c] for c in data})
    check = ledger.verify()
    assert (check.bad_id, check.reason) == (2, "it holds the content recorded as entry 4: entries reordered")


def test_a_row_inserted_behind_the_ledgers_back_is_found(ledger, url):
    raw(url, "INSERT INTO ratchet_ledger (ts, action, trigger, model, evidence) VALUES (1.0, 'promote', 'x', 'm', '{}')")
    check = ledger.verify()
    assert not check.ok and check.bad_id == 6 and "no hash" in check.reason, check
    # and appending after it does not hide it
    ledger.append(Entry(action="keep", trigger="gate", model="m"))
    assert ledger.verify().bad_id == 6


def test_two_processes_appending_at_once_keep_one_chain(url, tmp_path):
    (tmp_path / "home").mkdir()
    first = Ledger(url)
    first.append(Entry(action="keep", trigger="setup", model="m"))
    n = 20
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, who, str(n)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for who in ("worker-a", "worker-b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    check = first.verify()
    history = first.history()
    first.close()
    assert check.ok and check.entries == 1 + 2 * n, check
    assert len({e.prev_hash for e in history}) == len(history)  # no two entries claim one parent
    for who in ("worker-a", "worker-b"):
        assert [e.evidence["i"] for e in history if e.trigger == who] == list(range(n))


OLD_TABLE = """CREATE TABLE ratchet_ledger (
    id {id}, ts FLOAT NOT NULL, action VARCHAR(32) NOT NULL,
    trigger VARCHAR(64) NOT NULL, model VARCHAR(128) NOT NULL, from_version VARCHAR(32),
    to_version VARCHAR(32), data_commit VARCHAR(80), traffic FLOAT, evidence TEXT)"""


def test_a_ledger_from_before_the_chain_is_upgraded_once_on_open(url, tmp_path):
    (tmp_path / "home").mkdir()
    # the table as the previous release created it, with its entries
    raw(url, OLD_TABLE.format(id="SERIAL PRIMARY KEY" if url.startswith("postgresql") else "INTEGER NOT NULL PRIMARY KEY"))
    for i in range(4):
        raw(url, "INSERT INTO ratchet_ledger (ts, action, trigger, model, to_version, traffic, evidence) "
            "VALUES (:ts, 'traffic', 'old', 'm', :v, :t, :e)",
            ts=1700000000.123456 + i, v=str(i), t=i / 3, e=json.dumps({"p": 0.1 + i / 7}))
    ledger = Ledger(url)
    check = ledger.verify()
    assert check.ok and check.entries == 4, check
    ledger.append(Entry(action="promote", trigger="new", model="m", to_version="9"))
    ledger.close()
    again = Ledger(url)  # a second open does not chain again: edits stay visible
    raw(url, "UPDATE ratchet_ledger SET trigger = 'edited' WHERE id = 2")
    check = again.verify()
    assert (check.bad_id, check.entries) == (2, 5) and "changed" in check.reason
    assert [e.trigger for e in again.history()] == ["old", "edited", "old", "old", "new"]
    again.close()
