"""A tracking database another process is still creating: reading an alias must not migrate it."""

from __future__ import annotations

import sqlite3

from ratchet.core.settings import Settings
from ratchet.training.registry import Registry


def test_an_alias_read_on_a_database_being_created_finds_none_and_leaves_it_alone(tmp_path):
    settings = Settings(home=tmp_path / "home")
    settings.root.mkdir(parents=True)
    db = settings.root / "mlflow.db"
    with sqlite3.connect(db) as c:  # what a training process's MLflow has written so far
        c.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    registry = Registry(settings, "m", "e")
    assert registry.alias("champion") is None
    assert registry.aliases() == {"champion": None, "challenger": None, "previous": None}
    with sqlite3.connect(db) as c:  # MLflow never ran: its migrations would have added tables
        assert [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["alembic_version"]
