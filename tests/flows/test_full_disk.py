"""`ratchet ingest` into a home on a full or read-only disk: one line naming the path, and
the repository's main branch, its objects and the ledger as they were."""

from __future__ import annotations

import json

import pytest

from ratchet.promotion.ledger import Entry, Ledger
from tests.diskfull import TROUBLES, small_disk


@pytest.fixture
def disk(tmp_path, monkeypatch):
    with small_disk(tmp_path / "disk", size="64m") as d:
        monkeypatch.setenv("RATCHET_HOME", str(d.path / "home"))
        yield d


def _init_and_publish(cli, demo_data, home):
    r = cli("init", "--schema-from", demo_data.clean[0], "--target", demo_data.target, "--json")
    assert r.exit_code == 0, r.output
    r = cli("ingest", demo_data.clean[0], "--json")
    assert r.exit_code == 0, r.output
    ledger = Ledger(f"sqlite:///{home / 'ledger.db'}")
    ledger.append(Entry(action="promote", trigger="test", model="m", to_version="1", evidence={"p": 0.1 + 0.2}))
    ledger.close()
    return json.loads(r.stdout)["commit"]


def _intact(cli, main_commit):
    fsck = cli("data", "fsck", "--json")
    assert fsck.exit_code == 0, fsck.output
    assert json.loads(fsck.stdout) == {"ok": True, "problems": []}
    assert json.loads(cli("status", "--json").stdout)["data"] == main_commit


def _one_line_error(r, home, reason):
    assert r.exit_code == 1, r.output
    error = json.loads(r.stdout)["error"]  # --json: stdout is the one object
    assert "\n" not in error and reason in error and str(home) in error, error
    assert r.stderr.strip().splitlines()[-1] == error  # the last line a user sees
    return error


@pytest.mark.parametrize("trouble", sorted(TROUBLES))
def test_ingest_on_a_bad_disk_names_the_path_and_keeps_main(cli, disk, demo_data, trouble):
    reason, break_disk, mend_disk = TROUBLES[trouble]
    home = disk.path / "home"
    main = _init_and_publish(cli, demo_data, home)
    break_disk(disk)
    r = cli("ingest", demo_data.clean[1], "--json")
    _one_line_error(r, home, reason)
    verify = cli("history", "--verify")  # the ledger reads on a full or read-only disk
    assert (verify.exit_code, verify.stdout.strip()) == (0, "ledger intact: 1 entries"), verify.output
    # the data repository takes its lock file even to read: look at it mended
    mend_disk(disk)
    _intact(cli, main)
    # and the same batch goes in
    r = cli("ingest", demo_data.clean[1], "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "published", r.output
