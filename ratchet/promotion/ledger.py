"""The promotion ledger: an append-only, durable record of every alias move
and traffic change. SQLite in the home folder, the same table on Postgres.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

_META = sa.MetaData()
LEDGER = sa.Table(
    "ratchet_ledger",
    _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),  # promote | rollback | traffic | keep
    sa.Column("trigger", sa.String(64), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("from_version", sa.String(32)),
    sa.Column("to_version", sa.String(32)),
    sa.Column("data_commit", sa.String(80)),
    sa.Column("traffic", sa.Float),
    sa.Column("evidence", sa.Text),
)


@dataclass
class Entry:
    action: str
    trigger: str
    model: str
    from_version: str | None = None
    to_version: str | None = None
    data_commit: str | None = None
    traffic: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    ts: float = 0.0
    id: int | None = None


class Ledger:
    """Only ``append`` writes; there is no update or delete."""

    def __init__(self, url: str):
        self.url = url
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self.url)
            _META.create_all(self._engine)
        return self._engine

    def append(self, entry: Entry) -> Entry:
        row = asdict(entry)
        row.pop("id")
        row["ts"] = entry.ts or time.time()
        row["evidence"] = json.dumps(entry.evidence, default=str, sort_keys=True)
        with self.engine.begin() as conn:
            res = conn.execute(LEDGER.insert().values(**row))
            entry.id, entry.ts = int(res.inserted_primary_key[0]), row["ts"]
        return entry

    def history(self, limit: int | None = None) -> list[Entry]:
        q = sa.select(LEDGER).order_by(LEDGER.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        entries = [Entry(**{**r, "evidence": json.loads(r["evidence"] or "{}")}) for r in rows]
        return entries[-limit:] if limit else entries

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def ledger_rows(entries: list[Entry]) -> list[dict[str, Any]]:
    """One flat row per entry, for a table (the Prefect artifact, a report)."""
    return [
        {
            "id": e.id, "action": e.action, "trigger": e.trigger, "from": e.from_version,
            "to": e.to_version, "data_commit": (e.data_commit or "")[:12], "traffic": e.traffic,
            "p_value": e.evidence.get("p_value"),
        }
        for e in entries
    ]
