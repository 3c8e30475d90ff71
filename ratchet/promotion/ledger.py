"""The promotion ledger: an append-only, durable record of every alias move
and traffic change. SQLite in the home folder, the same table on Postgres.

Tamper evidence: a hash chain. Each entry stores ``prev_hash`` (the ``hash`` of the entry
before it, ``GENESIS`` for the first) and ``hash``, the SHA-256 of a canonical JSON of its
own fields plus ``prev_hash`` (``entry_hash``). A second table, ``ratchet_ledger_head``,
holds the count and the hash of the last entry, updated in the same transaction as each
append, so removing entries at the end is detected too. ``Ledger.verify`` walks the chain
and names the first bad entry. What a chain inside the database cannot show is a rewrite of
the whole chain and its head by someone with write access: for that, record the head hash
``verify`` returns somewhere else (a report, a Prefect artifact) and compare.

Appends from several processes (the service, flows, the CLI) are serialised, so the chain
never forks: SQLite takes its write lock at the start of the transaction (``BEGIN
IMMEDIATE``), Postgres locks the table (``LOCK TABLE ... IN EXCLUSIVE MODE``, which still
lets readers read) before reading the head.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from ratchet.promotion.decision import GateEvidence

GENESIS = "0" * 64  # the prev_hash of the first entry
_SETUP_LOCK = 0x7261746368  # the Postgres advisory lock key of table creation and upgrade

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
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("hash", sa.String(64)),
)
HEAD = sa.Table(
    "ratchet_ledger_head",
    _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1
    sa.Column("entries", sa.Integer, nullable=False),
    sa.Column("last_id", sa.Integer),
    sa.Column("hash", sa.String(64), nullable=False),
)
# the fields an entry's hash covers (not its id: the chain fixes the order)
HASHED = ("ts", "action", "trigger", "model", "from_version", "to_version", "data_commit", "traffic", "evidence")


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
    prev_hash: str | None = None
    hash: str | None = None

    def figures(self) -> dict[str, Any]:
        """The few figures a ledger table shows: the gate's p-value, difference and rows (a
        promote or keep), or a canary step's decision (a traffic move); None where not given."""
        gate = GateEvidence.stored(self.evidence)
        return {**gate.headline(), "decision": self.evidence.get("decision")}


@dataclass
class Verification:
    """What ``Ledger.verify`` found: ``ok``, or the first bad entry and why."""

    ok: bool
    entries: int
    head: str | None = None  # the hash of the last entry: record it elsewhere to anchor the chain
    bad_id: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _canonical(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same double
    return value


def entry_hash(row: dict[str, Any], prev_hash: str) -> str:
    """SHA-256 over a canonical JSON of the stored fields (``evidence`` as its stored text,
    floats as ``repr``) and ``prev_hash``: the same before and after a round trip through
    SQLite or Postgres."""
    doc = {k: _canonical(row[k]) for k in HASHED}
    doc["prev_hash"] = prev_hash
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _sqlite_begin(conn: sa.Connection) -> None:
    # pysqlite's own BEGIN is deferred and late; take the write lock up front for writers
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")


def _sqlite_connect(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event emits BEGIN itself


class Ledger:
    """Only ``append`` writes; there is no update or delete.

    Opening a ledger made before the hash chain (no ``prev_hash``/``hash`` columns) upgrades
    it in place, once: the columns are added and the existing entries chained in id order,
    in one transaction under the setup lock. Entries found without a hash after that were
    added behind the ledger's back, and ``verify`` says so."""

    def __init__(self, url: str):
        self.url = url
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            sqlite = sa.engine.make_url(self.url).get_backend_name() == "sqlite"
            # a writer waits for another's append rather than failing after SQLite's default 5 s
            engine = sa.create_engine(self.url, connect_args={"timeout": 60} if sqlite else {})
            if sqlite:
                sa.event.listen(engine, "connect", _sqlite_connect)
                sa.event.listen(engine, "begin", _sqlite_begin)
            try:
                self._setup(engine)
            except BaseException:
                engine.dispose()
                raise
            self._engine = engine
        return self._engine

    def _writing(self, engine: sa.Engine | None = None) -> sa.Connection:
        """A connection whose transactions take SQLite's write lock with their BEGIN."""
        return (engine or self.engine).connect().execution_options(write=True)

    @staticmethod
    def _lock(conn: sa.Connection, setup: bool = False) -> None:
        if conn.dialect.name == "postgresql":
            if setup:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SETUP_LOCK})
            else:
                conn.exec_driver_sql(f"LOCK TABLE {LEDGER.name} IN EXCLUSIVE MODE")

    def _setup(self, engine: sa.Engine) -> None:
        """Create the tables, or upgrade a ledger made before the chain; a ledger that needs
        neither is only read (a read-only home still opens)."""
        with engine.connect() as conn:
            if _ready(conn):
                return
        with self._writing(engine) as conn, conn.begin():
            self._lock(conn, setup=True)
            if LEDGER.name in sa.inspect(conn).get_table_names() and not _ready(conn):
                _upgrade(conn)
            _META.create_all(conn)

    def append(self, entry: Entry) -> Entry:
        row = asdict(entry)
        for k in ("id", "prev_hash", "hash"):
            row.pop(k)
        row["ts"] = float(entry.ts or time.time())
        row["traffic"] = None if entry.traffic is None else float(entry.traffic)
        row["evidence"] = json.dumps(entry.evidence, default=str, sort_keys=True)
        with self._writing() as conn, conn.begin():
            self._lock(conn)
            head = conn.execute(sa.select(HEAD).where(HEAD.c.id == 1)).mappings().first()
            count, prev = (head["entries"], head["hash"]) if head else (0, GENESIS)
            row["prev_hash"] = prev
            row["hash"] = entry_hash(row, prev)
            res = conn.execute(LEDGER.insert().values(**row))
            new_id = int(res.inserted_primary_key[0])
            _write_head(conn, count + 1, new_id, row["hash"], exists=head is not None)
        entry.id, entry.ts, entry.prev_hash, entry.hash = new_id, row["ts"], row["prev_hash"], row["hash"]
        return entry

    def history(self, limit: int | None = None) -> list[Entry]:
        q = sa.select(LEDGER).order_by(LEDGER.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        entries = [Entry(**{**r, "evidence": json.loads(r["evidence"] or "{}")}) for r in rows]
        return entries[-limit:] if limit else entries

    def verify(self) -> Verification:
        """Walk the chain in id order; the first entry that is changed, out of order, follows
        a removed entry or has no hash, or a head that says entries are missing at the end."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(LEDGER).order_by(LEDGER.c.id)).mappings().all()
            head = conn.execute(sa.select(HEAD).where(HEAD.c.id == 1)).mappings().first()
        return verify_rows([dict(r) for r in rows], None if head is None else dict(head))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def verify_rows(rows: list[dict[str, Any]], head: dict[str, Any] | None) -> Verification:
    """The check of ``Ledger.verify`` over rows read in id order and the head row."""
    owner = {r["hash"]: r["id"] for r in rows if r["hash"]}
    position = {r["id"]: i for i, r in enumerate(rows)}
    prev_hash, prev_id = GENESIS, None
    for i, r in enumerate(rows):
        bad = _check_row(rows, i, prev_hash, prev_id, owner, position)
        if bad:
            return Verification(False, len(rows), prev_hash, r["id"], bad)
        prev_hash, prev_id = r["hash"], r["id"]
    last = rows[-1]["id"] if rows else None
    if head is None:
        if rows:
            return Verification(False, len(rows), prev_hash, last, "the ledger's head record is missing")
        return Verification(True, 0, GENESIS)
    if head["hash"] != prev_hash or head["entries"] != len(rows):
        missing = head["entries"] - len(rows)
        what = (
            f"{missing} entries after it are missing (the head records {head['entries']} entries "
            f"ending at id {head['last_id']})" if missing > 0 and head["hash"] not in owner
            else f"does not match the head record ({head['entries']} entries ending at id {head['last_id']})"
        )
        return Verification(False, len(rows), prev_hash, last, f"the last entry {last}: {what}")
    return Verification(True, len(rows), prev_hash)


def _check_row(rows, i, prev_hash, prev_id, owner, position) -> str | None:
    r = rows[i]
    if not r["hash"] or not r["prev_hash"]:
        return "it has no hash: added behind the ledger's back"
    if entry_hash(r, r["prev_hash"]) != r["hash"]:
        for o in rows:  # only on the way out: whose content does it hold?
            if o["id"] != r["id"] and o["prev_hash"] and entry_hash(r, o["prev_hash"]) == o["hash"]:
                return f"it holds the content recorded as entry {o['id']}: entries reordered"
        return "its content was changed after it was written (it does not match its hash)"
    if r["prev_hash"] != prev_hash:
        before = "the start of the ledger" if prev_id is None else f"entry {prev_id}"
        other = owner.get(r["prev_hash"])
        if other is not None and position[other] > i:
            return f"it was written after entry {other}, which now follows it: entries reordered"
        if r["prev_hash"] == GENESIS and prev_id is not None:
            return f"it was written as the first entry, yet follows {before}"
        return f"it does not follow {before}: an entry between them was removed or changed"
    return None


def _chain_tail(conn: sa.Connection) -> tuple[int, int | None, str]:
    last = conn.execute(sa.select(LEDGER.c.id, LEDGER.c.hash).order_by(LEDGER.c.id.desc()).limit(1)).first()
    count = conn.execute(sa.select(sa.func.count()).select_from(LEDGER)).scalar_one()
    return (count, last[0], last[1]) if last else (0, None, GENESIS)


def _write_head(conn: sa.Connection, entries: int, last_id: int | None, hash_: str, exists: bool = False) -> None:
    values = {"entries": entries, "last_id": last_id, "hash": hash_}
    if exists:
        conn.execute(HEAD.update().where(HEAD.c.id == 1).values(**values))
    else:
        conn.execute(HEAD.insert().values(id=1, **values))


def _ready(conn: sa.Connection) -> bool:
    insp = sa.inspect(conn)
    tables = insp.get_table_names()
    return HEAD.name in tables and LEDGER.name in tables and "hash" in {c["name"] for c in insp.get_columns(LEDGER.name)}


def _upgrade(conn: sa.Connection) -> None:
    """Add the hash columns to a ledger made before the chain and chain its entries once."""
    if "hash" not in {c["name"] for c in sa.inspect(conn).get_columns(LEDGER.name)}:
        for col in ("prev_hash", "hash"):
            conn.exec_driver_sql(f"ALTER TABLE {LEDGER.name} ADD COLUMN {col} VARCHAR(64)")
    elif HEAD.name not in sa.inspect(conn).get_table_names():
        return  # chained before, and its head table dropped since: verify says so, create_all remakes it
    prev = GENESIS
    for r in conn.execute(sa.select(LEDGER).order_by(LEDGER.c.id)).mappings().all():
        digest = entry_hash(r, prev)
        conn.execute(LEDGER.update().where(LEDGER.c.id == r["id"]).values(prev_hash=prev, hash=digest))
        prev = digest
    HEAD.create(conn, checkfirst=True)
    conn.execute(HEAD.delete())
    _write_head(conn, *_chain_tail(conn))


def ledger_rows(entries: list[Entry]) -> list[dict[str, Any]]:
    """One flat row per entry, for a table (the Prefect artifact, a report)."""
    return [
        {
            "id": e.id, "action": e.action, "trigger": e.trigger, "from": e.from_version,
            "to": e.to_version, "data_commit": (e.data_commit or "")[:12], "traffic": e.traffic,
            "p_value": e.figures()["p_value"],
        }
        for e in entries
    ]
