"""Postgres fixtures: each test gets a fresh, uniquely named database on the
server at 127.0.0.1:5432 (trust auth), dropped afterwards, so runs never collide.
No server answering: every test here is skipped, saying so."""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

HOST = os.environ.get("RATCHET_TEST_PG_HOST", "127.0.0.1")
PORT = int(os.environ.get("RATCHET_TEST_PG_PORT", "5432"))
USERS = ("postgres", "root", getpass.getuser())
MAINTENANCE_DBS = ("postgres", "test")


@dataclass(frozen=True)
class PgServer:
    user: str
    maintenance_db: str

    def url(self, database: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://{self.user}@{HOST}:{PORT}/{database}"

    def connect(self, database: str | None = None):
        import psycopg

        return psycopg.connect(
            host=HOST, port=PORT, user=self.user, dbname=database or self.maintenance_db,
            connect_timeout=3, autocommit=True,
        )


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    try:
        import psycopg
    except ImportError:
        pytest.fail("psycopg is not installed: install the dev extra (pip install -e '.[dev]')")
    errors = []
    for user in dict.fromkeys(USERS):
        for db in MAINTENANCE_DBS:
            try:
                with psycopg.connect(host=HOST, port=PORT, user=user, dbname=db, connect_timeout=3):
                    return PgServer(user, db)
            except psycopg.OperationalError as e:
                errors.append(f"{user}@{db}: {' '.join(str(e).split())[:160]}")
    pytest.skip(f"no PostgreSQL server answers at {HOST}:{PORT} ({errors[0]})")


@dataclass(frozen=True)
class PgDatabase:
    server: PgServer
    name: str

    def url(self, driver: str = "psycopg") -> str:
        return self.server.url(self.name, driver)

    def query(self, sql: str, *params) -> list[tuple]:
        with self.server.connect(self.name) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[PgDatabase]:
    name = f"ratchet_test_{uuid.uuid4().hex[:12]}"
    with pg_server.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PgDatabase(pg_server, name)
    finally:
        with pg_server.connect() as conn:
            # FORCE: pools of the code under test may still hold connections
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
