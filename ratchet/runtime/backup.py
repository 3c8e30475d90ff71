"""``ratchet backup`` and ``ratchet restore``: the whole home in one archive, taken while the
stack runs, unpacked into a new home on any machine.

What the archive holds (``home/<path>`` members, then ``manifest.json``):

* every SQLite database in the home (found by its header, wherever it is: MLflow's tracking and
  registry database, the ledger, Optuna's studies, Prefect's own, any other), each copied with
  SQLite's online backup API, never as raw bytes: a transaction in flight is either in the copy
  or not. The ledger goes first and MLflow right after it: a promotion moves the aliases and
  then appends its ledger entry (the commit point), so a ledger copied first never names a
  champion that the registry's copy lacks; when the two still disagree on the champion (a
  promotion landed between the two copies), both are copied again (``ATTEMPTS``); when they
  disagree still (promotions that keep landing, or a registry alias moved by hand), the backup
  fails with one line naming both champions and writes nothing: an archive is never at odds
  with itself;
* each embedded data repository at a ref snapshot (``ratchet.data.repository.snapshot``): its
  refs read at one instant, then every commit, tree and object they reach;
* every other file of the home, copied as is: MLflow's artifacts and the model files of **every**
  version (all of them, not only those an alias names: a backup is the home as it is; ``ratchet
  gc`` is what trims it), checkpoints, configs (``ratchet.yaml``, ``schema.yaml``), reports,
  serving state, and the service's admin token (``run/admin-token``). The rest of ``run/``
  (process ids, ports, logs of this machine's processes) is left out, as are SQLite's
  ``-wal``/``-shm``/``-journal`` files (the copies are complete without them) and the archive.

The manifest lists each file's size and SHA-256, the ref snapshot of each repository, the
aliases (so the champion) and the ledger's length as copied, the time, ratchet's version and
the home it came from. The archive is written to a temporary file beside ``OUT`` and renamed
over it when complete.

``restore`` refuses a target that is not empty, unpacks into a temporary folder beside it, checks
every file against the manifest (a damaged archive or file is one error naming it), rewrites the
absolute paths of the old home that the databases hold (MLflow keeps artifact locations as
``file://`` URIs: ``experiments.artifact_location``, ``runs.artifact_uri``,
``logged_models.artifact_location``, ``model_versions.storage_location``/``source``; Optuna
keeps checkpoint paths) in every text column of every database but two: the ledger, whose hash
chain an edit would break (it is a record of what happened, not a pointer), and Prefect's
history. Then it renames the folder into place.

Stores that are not in the home (a Postgres ledger, an MLflow server, lakeFS) are not copied:
the manifest lists them under ``external``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import re
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import time
import uuid
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ratchet.core.files import create_private, private_dir
from ratchet.core.settings import Settings
from ratchet.data.repository.snapshot import FOLDERS, Vanished, is_repository, snapshot

FORMAT = 1
MANIFEST = "manifest.json"
PREFIX = "home/"
ATTEMPTS = 10  # ledger + registry copies tried until they agree on the champion; ref snapshots too
SQLITE_HEADER = b"SQLite format 3\x00"
SIDECARS = ("-wal", "-shm", "-journal")
KEPT_IN_RUN = ("admin-token",)  # run/ otherwise holds this machine's process ids and ports
COMPRESSLEVEL = 3  # most of a home is Parquet, pickles and PNGs: already compressed
CHUNK = 1 << 20


class BackupError(ValueError):
    """A backup or restore that cannot be done: one line naming the file."""


@dataclass
class BackupResult:
    archive: str
    home: str
    files: int
    bytes: int
    archive_bytes: int
    champion: dict[str, str]
    ledger_entries: int | None
    repositories: dict[str, dict[str, Any]]
    databases: list[str]
    ledger_agrees: bool  # the registry's champion is the ledger's (always: a disagreement is refused)
    external: list[str]
    skipped: list[str]
    attempts: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RestoreResult:
    home: str
    source_home: str
    created_at: str
    files: int
    bytes: int
    champion: dict[str, str]
    ledger_entries: int | None
    rewritten: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ archive writing
class _Hashing(io.RawIOBase):
    """Reads ``size`` bytes of a file, hashing them; too few is an error (the file shrank)."""

    def __init__(self, fh: BinaryIO, size: int, name: str):
        self.fh, self.left, self.name, self.sha = fh, size, name, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.fh.read(n)
        if len(data) < n:
            raise BackupError(f"{self.name} shrank while it was copied; run the backup again")
        self.left -= len(data)
        self.sha.update(data)
        return data


class _Writer:
    def __init__(self, tar: tarfile.TarFile):
        self.tar = tar
        self.files: dict[str, dict[str, Any]] = {}

    def _info(self, rel: str, size: int, mode: int, mtime: float) -> tarfile.TarInfo:
        info = tarfile.TarInfo(PREFIX + rel)
        info.size, info.mode, info.mtime = size, stat.S_IMODE(mode), mtime
        return info

    def folder(self, rel: str) -> None:
        info = tarfile.TarInfo(PREFIX + rel)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, time.time()
        self.tar.addfile(info)

    def data(self, rel: str, data: bytes, mode: int = 0o644, mtime: float | None = None) -> None:
        self.tar.addfile(self._info(rel, len(data), mode, time.time() if mtime is None else mtime), io.BytesIO(data))
        self.files[rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def file(self, rel: str, path: Path) -> bool:
        """Copy a file as it is now (its size when opened); False when it is gone already."""
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return False
        with fh:
            st = os.fstat(fh.fileno())
            reader = _Hashing(fh, st.st_size, str(path))
            self.tar.addfile(self._info(rel, st.st_size, st.st_mode, st.st_mtime), reader)
        self.files[rel] = {"size": st.st_size, "sha256": reader.sha.hexdigest()}
        return True


# ------------------------------------------------------------------ SQLite
def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == SQLITE_HEADER
    except OSError:
        return False


def _connect_ro(path: Path) -> sqlite3.Connection:
    try:
        return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=60)
    except sqlite3.OperationalError:  # e.g. a WAL database whose -shm this user cannot create
        return sqlite3.connect(path, timeout=60)


def copy_sqlite(src: Path, dest: Path) -> str:
    """An online backup of ``src`` into ``dest`` (one step: a consistent instant), made a
    self-contained file (rollback journal); returns the source's journal mode."""
    with contextlib.closing(_connect_ro(src)) as s, contextlib.closing(sqlite3.connect(dest)) as d:
        mode = s.execute("PRAGMA journal_mode").fetchone()[0]
        s.backup(d)
        d.execute("PRAGMA journal_mode=DELETE")
    return str(mode).lower()


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _role(rel: str, path: Path) -> str:
    with contextlib.closing(_connect_ro(path)) as db:
        tables = _tables(db)
    if "ratchet_ledger" in tables:
        return "ledger"
    if "registered_model_aliases" in tables or {"experiments", "runs"} <= tables:
        return "mlflow"
    if rel.startswith("prefect/"):
        return "prefect"
    return "other"


def _aliases(path: Path) -> dict[str, dict[str, str]]:
    """{model: {alias: version}} of an MLflow database copy."""
    out: dict[str, dict[str, str]] = {}
    with contextlib.closing(sqlite3.connect(path)) as db:
        if "registered_model_aliases" not in _tables(db):
            return out
        for name, alias, version in db.execute("SELECT name, alias, version FROM registered_model_aliases"):
            out.setdefault(name, {})[alias] = str(version)
    return out


def _ledger_view(path: Path) -> tuple[int, dict[str, str]]:
    """(entries, {model: champion by the ledger}) of a ledger copy: the target of the last
    promote or rollback of each model."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        n = db.execute("SELECT count(*) FROM ratchet_ledger").fetchone()[0]
        rows = db.execute(
            "SELECT model, to_version FROM ratchet_ledger WHERE action IN ('promote', 'rollback') ORDER BY id"
        ).fetchall()
    return int(n), {model: str(v) for model, v in rows if v is not None}


# ------------------------------------------------------------------ the home
@dataclass
class _Plan:
    databases: dict[str, Path] = field(default_factory=dict)  # rel -> live file
    repositories: dict[str, Path] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _plan(root: Path, exclude: set[Path]) -> _Plan:
    plan = _Plan()
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        rel_dir = here.relative_to(root)
        if rel_dir.parts[:1] == ("run",):
            names = [n for n in names if n in KEPT_IN_RUN]
            dirs[:] = []
        for d in list(dirs):
            if here / d in exclude:
                dirs.remove(d)
            elif is_repository(here / d):
                plan.repositories[(rel_dir / d).as_posix()] = here / d
                dirs.remove(d)
        dirs.sort()
        for name in sorted(names):
            path = here / name
            rel = (rel_dir / name).as_posix()
            if path in exclude:
                continue
            if path.is_symlink() or not path.is_file():
                plan.skipped.append(f"{rel} (not a regular file)")
            elif name.endswith(SIDECARS) and is_sqlite(here / re.sub(r"-(wal|shm|journal)$", "", name)):
                continue
            elif is_sqlite(path):
                plan.databases[rel] = path
            else:
                plan.files[rel] = path
    return plan


def _external(settings: Settings) -> list[str]:
    """Stores this home's settings place outside the home (not in the archive)."""
    from ratchet.core.settings import mask_password

    out = []
    for what, url in (("mlflow_tracking", settings.tracking_uri), ("optuna", settings.optuna_url),
                      ("ledger", settings.ledger)):
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
        if path is None or not Path(path).resolve().is_relative_to(settings.root):
            out.append(f"{what}: {mask_password(url)}")
    artifacts = settings.artifact_root
    if not artifacts.startswith(settings.root.as_uri()):
        out.append(f"mlflow_artifacts: {mask_password(artifacts)}")
    return out


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from ratchet.training.registry import code_version

    try:
        ratchet = version("ratchet")
    except PackageNotFoundError:
        ratchet = "unknown"
    return {"ratchet_version": ratchet, "code_version": code_version()}


def _copy_one(rel: str, path: Path, work: Path, role: str | None = None) -> dict[str, Any]:
    (work / rel).parent.mkdir(parents=True, exist_ok=True)
    return {"role": role or _role(rel, path), "journal_mode": copy_sqlite(path, work / rel)}


def _copy_stores(databases: dict[str, Path], work: Path) -> tuple[dict[str, dict[str, Any]], int, bool]:
    """Online copies of every database into ``work``: the ledger, then MLflow's (again until
    they agree on the champion), then the rest. Returns their descriptions, the attempts and
    whether the copies agree (always: copies that still disagree after ``ATTEMPTS`` raise
    ``BackupError``, nothing is archived)."""
    roles = {rel: _role(rel, path) for rel, path in databases.items()}
    order = sorted(databases, key=lambda rel: ({"ledger": 0, "mlflow": 1}.get(roles[rel], 2), rel))
    first = [rel for rel in order if roles[rel] in ("ledger", "mlflow")]
    dbs: dict[str, dict[str, Any]] = {}
    attempts, agree = 0, True
    for attempts in range(1, ATTEMPTS + 1):  # noqa: B007 - reported
        for rel in first:
            dbs[rel] = _copy_one(rel, databases[rel], work, roles[rel])
        ledger_says: dict[str, str] = {}
        aliases: dict[str, dict[str, str]] = {}
        for rel in first:
            if roles[rel] == "ledger":
                dbs[rel]["entries"], champions = _ledger_view(work / rel)
                ledger_says.update(champions)
            else:
                aliases.update(_aliases(work / rel))
        differ = {m: (v, aliases.get(m, {}).get("champion")) for m, v in ledger_says.items()
                  if aliases.get(m, {}).get("champion") != v}
        agree = not differ
        if agree:
            break
        time.sleep(0.05 + 0.1 * random.random())  # a promotion in flight: its ledger entry comes next
    if not agree:  # an archive whose ledger and registry disagree would restore a home at odds with itself
        raise BackupError(
            f"the ledger and the registry disagree on the champion after {attempts} copies ("
            + "; ".join(f"{m}: ledger v{lv}, registry {'v' + rv if rv else 'none'}" for m, (lv, rv) in differ.items())
            + "): no archive written; run it again once promotions settle, or compare `ratchet history` "
            "with the registry's champion alias"
        )
    for rel in order:
        if rel not in dbs:
            dbs[rel] = _copy_one(rel, databases[rel], work, roles[rel])
    return dbs, attempts, agree


def backup_home(settings: Settings, out: Path | str) -> BackupResult:
    """Write a consistent copy of the home to the ``.tar.gz`` archive ``out`` (atomically)."""
    started = time.monotonic()
    root = settings.root
    if not root.is_dir():
        raise BackupError(f"no home at {root} (set by --home or RATCHET_HOME)")
    out = Path(out).expanduser().resolve()
    if out.is_dir():
        raise BackupError(f"{out} is a folder: name the archive to write, e.g. {out / 'ratchet-backup.tar.gz'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with tempfile.TemporaryDirectory(prefix=".ratchet-backup-", dir=out.parent) as scratch:
            work = Path(scratch)
            dbs, attempts, agree = _copy_stores(_plan(root, exclude={out}).databases, work)
            # the files after the databases: every artifact the registry's copy names is complete by now
            plan = _plan(root, exclude={out, work, tmp})
            for rel in plan.databases.keys() - dbs.keys():  # created since: copied too
                dbs[rel] = _copy_one(rel, plan.databases[rel], work)
            manifest = _write_archive(tmp, plan, dbs, work, settings, agree)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    champion = {m: a["champion"] for m, a in manifest["aliases"].items() if "champion" in a}
    return BackupResult(
        archive=str(out), home=str(root), files=len(manifest["files"]),
        bytes=sum(f["size"] for f in manifest["files"].values()), archive_bytes=out.stat().st_size,
        champion=champion, ledger_entries=manifest["ledger_entries"], repositories=manifest["repositories"],
        databases=sorted(dbs), ledger_agrees=agree, external=manifest["external"], skipped=plan.skipped, attempts=attempts,
        seconds=round(time.monotonic() - started, 3),
    )


def _write_archive(tmp: Path, plan: _Plan, dbs: dict[str, dict[str, Any]], work: Path,
                   settings: Settings, agree: bool) -> dict[str, Any]:
    create_private(tmp)  # 0600 before a byte is in it: the archive holds the admin token and Prefect's blocks
    with tarfile.open(tmp, "w:gz", compresslevel=COMPRESSLEVEL) as tar:
        w = _Writer(tar)
        for rel in dbs:
            w.file(rel, work / rel)
        aliases: dict[str, dict[str, str]] = {}
        ledger_entries = None
        for rel, db in dbs.items():
            if db["role"] == "mlflow":
                aliases.update(_aliases(work / rel))
            elif db["role"] == "ledger":
                ledger_entries = (ledger_entries or 0) + db["entries"]
        repositories = {rel: _add_repository(w, rel, path) for rel, path in plan.repositories.items()}
        for rel, path in plan.files.items():
            if not w.file(rel, path):
                plan.skipped.append(f"{rel} (removed during the backup)")
        manifest = {
            "format": FORMAT, "kind": "ratchet-backup",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "created_ts": time.time(),
            **_versions(), "home": str(settings.root),
            "champion": {m: a["champion"] for m, a in aliases.items() if "champion" in a},
            "aliases": aliases, "ledger_entries": ledger_entries, "ledger_agrees": agree, "databases": dbs,
            "repositories": repositories, "external": _external(settings),
            "skipped": plan.skipped, "files": w.files,
        }
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(data), time.time(), 0o644
        tar.addfile(info, io.BytesIO(data))
    return manifest


def _add_repository(w: _Writer, rel: str, path: Path) -> dict[str, Any]:
    """The repository at a ref snapshot; a new snapshot when GC removed a file it reached."""
    for attempt in range(ATTEMPTS):
        try:
            snap = snapshot(path)
            _check_present(snap.files)
            break
        except Vanished as e:
            if attempt == ATTEMPTS - 1:
                raise BackupError(f"{path} kept changing under garbage collection ({e}); run the backup again") from e
    for sub in FOLDERS:
        w.folder(f"{rel}/{sub}")
    for name, data in snap.data.items():
        w.data(f"{rel}/{name}", data)
    for name, file in snap.files.items():
        if not w.file(f"{rel}/{name}", file):
            raise BackupError(f"{file} was removed while it was copied (garbage collection?); run the backup again")
    return snap.summary()


def _check_present(files: dict[str, Path]) -> None:
    for path in files.values():
        if not path.is_file():
            raise Vanished(str(path))


# ------------------------------------------------------------------ restore
def _safe_rel(name: str, archive: Path) -> str:
    rel = name.removeprefix(PREFIX)
    parts = Path(rel).parts
    if not name.startswith(PREFIX) or not parts or Path(rel).is_absolute() or ".." in parts:
        raise BackupError(f"{archive}: unexpected member {name!r}: not a ratchet backup")
    return Path(rel).as_posix()


def _unpack(archive: Path, work: Path) -> tuple[dict[str, Any], dict[str, str], int]:
    """Extract into ``work``; return the manifest, each file's SHA-256 and the bytes written."""
    manifest: dict[str, Any] | None = None
    digests: dict[str, str] = {}
    total = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for m in tar:
                if m.name == MANIFEST and m.isfile():
                    manifest = json.loads(tar.extractfile(m).read())
                    continue
                rel = _safe_rel(m.name, archive)
                dest = work / rel
                if m.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                if not m.isfile():
                    raise BackupError(f"{archive}: unexpected member {m.name!r} (not a file or folder)")
                dest.parent.mkdir(parents=True, exist_ok=True)
                sha = hashlib.sha256()
                src = tar.extractfile(m)
                with open(dest, "wb") as fh:
                    for chunk in iter(lambda src=src: src.read(CHUNK), b""):
                        sha.update(chunk)
                        fh.write(chunk)
                os.chmod(dest, m.mode & 0o777)
                os.utime(dest, (m.mtime, m.mtime))
                digests[rel] = sha.hexdigest()
                total += m.size
            # to the end of the gzip stream, so that its CRC is checked: a damaged header ends
            # tarfile's iteration silently, as if the archive ended there
            while tar.fileobj.read(CHUNK):
                pass
    except (tarfile.TarError, EOFError, zlib.error, OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        if isinstance(e, OSError) and e.filename:  # writing the new home failed (disk full...)
            raise
        raise BackupError(f"{archive}: corrupt or truncated archive ({e or type(e).__name__})") from None
    if manifest is None or manifest.get("kind") != "ratchet-backup":
        raise BackupError(f"{archive}: no {MANIFEST} in it: not a ratchet backup")
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{archive}: backup format {manifest.get('format')}; this version reads format {FORMAT}")
    return manifest, digests, total


def _verify(archive: Path, manifest: dict[str, Any], digests: dict[str, str]) -> None:
    listed = manifest["files"]
    for rel, meta in listed.items():
        if rel not in digests:
            raise BackupError(f"{archive}: {rel} is in the manifest but not in the archive")
        if digests[rel] != meta["sha256"]:
            raise BackupError(f"{archive}: {rel} does not match its SHA-256 in the manifest (corrupt)")
    extra = sorted(set(digests) - set(listed))
    if extra:
        raise BackupError(f"{archive}: {extra[0]} is in the archive but not in the manifest")


def _path_rebase(old: Path, new: Path):
    """A function that rewrites the old home's paths and ``file:`` URIs in a string to the new one's."""
    forms = sorted({(old.as_uri(), new.as_uri()), (f"file://{old}", new.as_uri()), (str(old), str(new))},
                   key=lambda p: -len(p[0]))
    pattern = re.compile("|".join(re.escape(o) for o, _ in forms) + r"""(?=[/"'\s?#,;)\]}]|$)""")
    table = dict(forms)

    def rebase(value: Any) -> Any:
        return pattern.sub(lambda m: table[m.group(0)], value) if isinstance(value, str) else value

    return rebase, [o for o, _ in forms]


def rewrite_paths(db_path: Path, old: Path, new: Path) -> dict[str, int]:
    """Point every text value of a database that names the old home at the new home; the
    rows changed, per ``table.column``."""
    rebase, needles = _path_rebase(old, new)
    counts: dict[str, int] = {}
    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        db.create_function("ratchet_rebase", 1, rebase, deterministic=True)
        for table in sorted(_tables(db) - {"sqlite_sequence"}):
            for col in db.execute(f'PRAGMA table_info("{table}")').fetchall():
                name, kind = col[1], (col[2] or "").upper()
                if kind and not any(t in kind for t in ("CHAR", "TEXT", "CLOB", "JSON")):
                    continue
                where = " OR ".join(f'instr("{name}", ?) > 0' for _ in needles)
                n = db.execute(f'UPDATE "{table}" SET "{name}" = ratchet_rebase("{name}") WHERE {where}',  # noqa: S608
                               needles).rowcount
                if n:
                    counts[f"{table}.{name}"] = n
    return counts


def restore_home(archive: Path | str, target: Path | str) -> RestoreResult:
    """Unpack a backup into the new home ``target`` (absent or empty), checked and re-pointed."""
    archive = Path(archive).expanduser().resolve()
    if not archive.is_file():
        raise BackupError(f"{archive}: no such archive")
    target = Path(target).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise BackupError(f"{target} is a file, not a folder: restore into a new home")
    if target.is_dir() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: restore into a new or empty folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = private_dir(target.parent / f".{target.name}.restore-{os.getpid()}-{uuid.uuid4().hex[:8]}")  # the new home: 0700
    try:
        manifest, digests, total = _unpack(archive, work)
        _verify(archive, manifest, digests)
        old = Path(manifest["home"])
        rewritten = {}
        for rel, db in manifest["databases"].items():
            if db["role"] in ("mlflow", "other"):
                counts = rewrite_paths(work / rel, old, target)
                if counts:
                    rewritten[rel] = counts
            if db.get("journal_mode") == "wal":
                with contextlib.closing(sqlite3.connect(work / rel)) as con:
                    con.execute("PRAGMA journal_mode=WAL")
        if target.is_dir():
            target.rmdir()  # empty, checked above
        os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return RestoreResult(
        home=str(target), source_home=str(old), created_at=manifest["created_at"], files=len(digests),
        bytes=total, champion=manifest["champion"], ledger_entries=manifest["ledger_entries"], rewritten=rewritten,
    )
