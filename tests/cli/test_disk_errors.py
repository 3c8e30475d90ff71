"""The real `ratchet` on a full or read-only home: one line naming the path, no traceback,
and the repository and ledger as they were."""

from __future__ import annotations

import json

import pytest

from ratchet.promotion.ledger import Entry, Ledger
from tests.cli.test_cli import one_line_error
from tests.diskfull import small_disk


@pytest.fixture
def on_disk(project, tmp_path):
    """The project's home on a small disk of its own, initialised, with one ledger entry."""
    with small_disk(tmp_path / "disk", size="16m") as disk:
        home = disk.path / "home"
        project.home = home  # Project.env names it in RATCHET_HOME
        r = project.run("init", "--schema-from", "sample.csv", "--target", "target")
        assert r.returncode == 0, r.stderr
        ledger = Ledger(f"sqlite:///{home / 'ledger.db'}")
        ledger.append(Entry(action="promote", trigger="test", model="m", to_version="1", traffic=0.1 + 0.2))
        ledger.close()
        yield project, disk


def _repository(project):
    from ratchet.data.repository.embedded import EmbeddedRepository

    return EmbeddedRepository.open(project.home / "data" / "ratchet")


def test_a_full_home_is_one_line_naming_the_file(on_disk):
    project, disk = on_disk
    repo = _repository(project)
    before = repo.list_branches()
    disk.fill()
    line = one_line_error(project.run("data", "branch", "create", "exp"), "No space left on device")
    assert line.startswith(f"error: {project.home}/data/"), line
    disk.free()
    assert repo.list_branches() == before  # no half-made branch
    assert repo.fsck() == []
    verify = project.run("history", "--verify")
    assert (verify.returncode, verify.stdout.strip()) == (0, "ledger intact: 1 entries"), verify.stderr


def test_a_read_only_home_is_one_line_naming_the_file(on_disk):
    project, disk = on_disk
    disk.read_only()
    r = project.run("data", "branch", "create", "exp", "--json")
    line = one_line_error(r, "Read-only file system", str(project.home))
    assert json.loads(r.stdout) == {"error": line.removeprefix("error: "), "type": "OSError"}
    verify = project.run("history", "--verify")  # the ledger is read without writing
    assert (verify.returncode, verify.stdout.strip()) == (0, "ledger intact: 1 entries"), verify.stderr
