"""The embedded data repository: lakeFS semantics on local disk, no server.

Layout under the root folder::

    ratchet-repo.json          format marker
    lock                       inter-process lock file (fcntl.flock)
    objects/ab/cdef...         data objects, named by the sha256 of their bytes
    trees/ab/cdef...           trees: JSON {path: object digest}, content-addressed
    commits/ab/cdef...         commits: JSON documents, content-addressed (id = digest)
    refs/branches/<name>       JSON {"head": commit id, "staging": staging token}
    refs/tags/<name>           a commit id
    staging/<token>.jsonl      a branch's uncommitted writes, an append-only log
    tmp/                       temporary files, renamed into place

Every file but the staging logs is written to ``tmp/``, fsynced, then
``os.replace``-d into place, so a reader sees either the old or the new
version, never a torn one. As in lakeFS, a branch names its staging area by a
token: staging a write appends one line to that log (O(1) whatever the number
of staged paths), and a commit points the branch at its new commit *and* a
fresh token in one atomic rename of the ref file, so a crash can never leave
staged entries that were already committed, nor lose staged entries. A line
torn by a crash belongs to a write that never returned; readers skip it.

Commit order: the data objects were written when staged; commit writes the
tree, then the commit document, then moves the ref last. A crash (even SIGKILL)
at any point leaves every earlier commit readable and every ref valid; at worst
it leaves unreferenced objects behind, which ``fsck`` does not report.

Ref updates (and every read-modify-write of a ref file) hold an exclusive
``fcntl.flock`` on ``lock``, so concurrent writers, threads or processes,
never lose an update. Reads take no lock.

Creating a branch writes one small ref file: no data is copied whatever the
size of the repository.

Merges always produce a merge commit with two parents ``(dest head, source)``,
as lakeFS does, even when a fast-forward would be possible; merging a source
that is already an ancestor of the destination is a no-op that returns the
destination head.

Durability: every file is fsynced before its rename, and its folder after, so
commits also survive power loss. ``RATCHET_DATA_FSYNC=0`` skips the fsyncs
(faster; a killed process still loses nothing, a power cut may).

Crash testing hook: when the environment variable
``RATCHET_DATA_COMMIT_STEP_DELAY`` holds a number of seconds, ``commit``
sleeps that long after each of its steps (tree written, commit document
written, ref moved) so a test can SIGKILL a process in the middle of a commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import heapq
import json
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from ratchet.data.repository.base import (
    BranchExists,
    Change,
    Commit,
    DataRepoError,
    DataRepository,
    MergeStrategy,
    NothingToCommit,
    ObjectNotFound,
    RefNotFound,
)
from ratchet.data.repository.semantics import (
    BRANCH_RE,
    HEX64,
    InvalidName,
    check_strategy,
    normalize_metadata,
    three_way_merge,
    tree_diff,
    validate_branch_name,
    validate_path,
    validate_tag_name,
)

if TYPE_CHECKING:  # pandas on first read: `ratchet status` resolves a branch without it
    import pandas as pd

FORMAT_VERSION = 2
MARKER = "ratchet-repo.json"
STEP_DELAY_ENV = "RATCHET_DATA_COMMIT_STEP_DELAY"
FSYNC_ENV = "RATCHET_DATA_FSYNC"
def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LRU:
    """A small thread-tolerant LRU for immutable parsed documents (trees, commits)."""

    def __init__(self, size: int):
        self.size = size
        self._d: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)


class EmbeddedRepository(DataRepository):
    """A versioned data repository in a local folder (see the module docstring)."""

    def __init__(self, root: Path | str, main_branch: str = "main"):
        self.root = Path(root)
        if not (self.root / MARKER).is_file():
            raise DataRepoError(f"not a ratchet data repository: {self.root} (use open_or_init)")
        fmt = json.loads((self.root / MARKER).read_bytes()).get("format")
        if fmt != FORMAT_VERSION:
            raise DataRepoError(
                f"data repository {self.root} has format {fmt}; this version reads format {FORMAT_VERSION}"
            )
        self.main_branch = validate_branch_name(main_branch)
        # fsync makes commits survive power loss; atomic renames alone already
        # make them survive a killed process. RATCHET_DATA_FSYNC=0 drops fsync.
        self._fsync = os.environ.get(FSYNC_ENV, "1") != "0"
        self._tlock = threading.Lock()
        self._trees = _LRU(64)
        self._commits = _LRU(8192)
        # staging token -> (bytes of the log parsed, entries); logs only grow
        self._staging_cache: dict[str, tuple[int, dict[str, str | None]]] = {}
        self._staging_lock = threading.Lock()

    # ------------------------------------------------------------- lifecycle
    @classmethod
    def open(cls, root: Path | str, main_branch: str = "main") -> EmbeddedRepository:
        return cls(root, main_branch=main_branch)

    @classmethod
    def open_or_init(cls, root: Path | str, main_branch: str = "main") -> EmbeddedRepository:
        """Open the repository at ``root``, creating it (with an empty first
        commit on ``main_branch``, so main always resolves) if missing."""
        root = Path(root)
        validate_branch_name(main_branch)
        for sub in ("objects", "trees", "commits", "refs/branches", "refs/tags", "staging", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        lock = root / "lock"
        with open(lock, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            marker = root / MARKER
            if not marker.exists():
                tmp = root / "tmp" / f"marker-{uuid.uuid4().hex}"
                tmp.write_bytes(_canonical({"format": FORMAT_VERSION, "kind": "ratchet-data-repository"}))
                os.replace(tmp, marker)
                _fsync_dir(root)
            # temporary files of writers killed long ago; a live writer renames its file within seconds
            cutoff = time.time() - 24 * 3600
            for stale in (root / "tmp").iterdir():
                with contextlib.suppress(OSError):
                    if stale.stat().st_mtime < cutoff:
                        stale.unlink()
        repo = cls(root, main_branch=main_branch)
        with repo._locked():
            if not repo._branch_file(main_branch).exists():
                tree = repo._write_tree({})
                head = repo._write_commit(tree, [], "Repository created", {})
                repo._write_branch_state(main_branch, head)
            repo._drop_orphan_staging()
        return repo

    # ---------------------------------------------------------- low level io
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # The thread lock keeps this process's threads from piling up in flock;
        # flock (one open file description per acquisition) excludes other processes.
        with self._tlock, open(self.root / "lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _new_tmp(self) -> Path:
        return self.root / "tmp" / f"{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex}"

    def _sync_dir(self, path: Path) -> None:
        if self._fsync:
            _fsync_dir(path)

    def _install(self, tmp: Path, target: Path) -> None:
        """Rename a complete (already fsynced) temporary file into place."""
        try:
            if not target.parent.is_dir():
                target.parent.mkdir(parents=True, exist_ok=True)
                self._sync_dir(target.parent.parent)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._sync_dir(target.parent)

    def _atomic_write(self, target: Path, data: bytes) -> None:
        # Not core.files.atomic_write: the temporary file goes to the repository's own tmp/
        # (one folder a crash can leave files in, beside objects/ on the same filesystem),
        # and directories are fsynced by the repository's durability setting.
        tmp = self._new_tmp()
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
                fh.flush()
                if self._fsync:
                    os.fsync(fh.fileno())
        except BaseException as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if isinstance(e, OSError) and e.filename is None:  # a full disk names no file: name it
                raise OSError(e.errno, e.strerror, str(target)) from e
            raise
        self._install(tmp, target)

    def _cas_path(self, kind: str, digest: str) -> Path:
        return self.root / kind / digest[:2] / digest[2:]

    def _store(self, kind: str, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self._cas_path(kind, digest)
        if not self._touch(path):
            self._atomic_write(path, data)
        return digest

    @staticmethod
    def _touch(path: Path) -> bool:
        """Mark an existing file as just written (``ratchet gc`` spares young files); False if none."""
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except OSError:  # a read-only file system, another user's file: it is there all the same
            return path.exists()
        return True

    def _write_tree(self, entries: dict[str, str]) -> str:
        digest = self._store("trees", _canonical(entries))
        self._trees.put(digest, entries)
        return digest

    def _tree(self, digest: str) -> dict[str, str]:
        tree = self._trees.get(digest)
        if tree is None:
            try:
                tree = json.loads(self._cas_path("trees", digest).read_bytes())
            except FileNotFoundError:
                raise DataRepoError(f"repository damaged: tree {digest} missing (run fsck)") from None
            self._trees.put(digest, tree)
        return tree

    def _write_commit(self, tree: str, parents: list[str], message: str, metadata: dict[str, str]) -> str:
        parent_docs = [self._commit_doc(p) for p in parents]
        # created_at never goes backwards along history, so log order (newest
        # first) is always a valid topological order even if the clock steps back.
        created = max([time.time(), *(d["created_at"] for d in parent_docs)])
        doc = {
            "tree": tree,
            "parents": list(parents),
            "message": message,
            "metadata": metadata,
            "created_at": created,
            "generation": 1 + max((d["generation"] for d in parent_docs), default=0),
        }
        digest = self._store("commits", _canonical(doc))
        self._commits.put(digest, doc)
        return digest

    def _commit_doc(self, commit_id: str) -> dict[str, Any]:
        doc = self._commits.get(commit_id)
        if doc is None:
            if not HEX64.match(commit_id):
                raise RefNotFound(f"no commit {commit_id!r}")
            try:
                doc = json.loads(self._cas_path("commits", commit_id).read_bytes())
            except FileNotFoundError:
                raise RefNotFound(f"no commit {commit_id!r}") from None
            self._commits.put(commit_id, doc)
        return doc

    @staticmethod
    def _ref_file_name(name: str) -> str:
        return quote(name, safe="")

    def _branch_file(self, name: str) -> Path:
        return self.root / "refs" / "branches" / self._ref_file_name(name)

    def _tag_file(self, name: str) -> Path:
        return self.root / "refs" / "tags" / self._ref_file_name(name)

    def _branch_state(self, name: str) -> dict[str, Any] | None:
        if not isinstance(name, str) or not BRANCH_RE.match(name):
            return None
        try:
            return json.loads(self._branch_file(name).read_bytes())
        except FileNotFoundError:
            return None

    def _branch_view(self, name: str) -> tuple[str, dict[str, str | None]] | None:
        """A consistent lock-free (head, staging entries) of a branch, or None if no such branch.

        A commit moves the ref to a fresh token, then deletes the old log; a
        reader that finds its log gone re-reads the ref rather than pairing the
        old head with an empty staging area.
        """
        while True:
            state = self._branch_state(name)
            if state is None:
                return None
            staging = self._read_staging(state["staging"])
            if staging is not None:
                return state["head"], staging
            again = self._branch_state(name)
            if again is None or again["staging"] == state["staging"]:
                return state["head"], {}  # an empty staging area has no log yet

    def _require_branch(self, name: str) -> dict[str, Any]:
        state = self._branch_state(name)
        if state is None:
            raise RefNotFound(f"no branch {name!r}")
        return state

    def _write_branch_state(self, name: str, head: str) -> str:
        """Point ``name`` at ``head`` with a fresh, empty staging area; return its token."""
        token = uuid.uuid4().hex
        self._atomic_write(self._branch_file(name), _canonical({"head": head, "staging": token}))
        return token

    # ----------------------------------------------------------------- staging
    def _staging_file(self, token: str) -> Path:
        return self.root / "staging" / f"{token}.jsonl"

    def _staging(self, token: str) -> dict[str, str | None]:
        """Entries of a staging log: path -> digest, or None for a staged deletion."""
        return self._read_staging(token) or {}

    def _read_staging(self, token: str) -> dict[str, str | None] | None:
        """Like ``_staging`` but None when the log does not exist.

        Parsed incrementally (the log only grows) and never mutated once
        returned, so readers need no lock; an incomplete last line is left for later.
        """
        with self._staging_lock:
            offset, entries = self._staging_cache.get(token, (0, {}))
        path = self._staging_file(token)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        if size == offset:
            return entries
        if size < offset:  # cannot happen to a live log; reparse to be safe
            offset, entries = 0, {}
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read(size - offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            return entries
        entries = dict(entries)
        for line in chunk[:end].split(b"\n"):
            try:
                rec = json.loads(line)
                p = rec["p"]
            except (ValueError, KeyError, TypeError):
                continue  # torn by a crash: its write never returned
            if "d" in rec:
                entries[p] = rec["d"]
            else:
                entries.pop(p, None)  # unstaged: back to the committed state
        with self._staging_lock:
            self._staging_cache[token] = (offset + end + 1, entries)
            if len(self._staging_cache) > 1024:  # logs of long-gone commits: forget the oldest
                del self._staging_cache[next(iter(self._staging_cache))]
        return entries

    def _append_staging(self, token: str, record: dict[str, Any]) -> None:
        """Append one record to a staging log (caller holds the repository lock)."""
        path = self._staging_file(token)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            # a line torn by a crashed writer must not swallow this record
            sep = b"\n" if size and os.pread(fd, 1, size - 1) != b"\n" else b""
            os.write(fd, sep + _canonical(record) + b"\n")
            if self._fsync:
                os.fsync(fd)
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(path)) from e
        finally:
            os.close(fd)
        if size == 0:
            self._sync_dir(path.parent)

    def _drop_staging(self, token: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._staging_file(token).unlink()
        with self._staging_lock:
            self._staging_cache.pop(token, None)

    def _drop_orphan_staging(self) -> None:
        """Remove logs no branch points at (left by a crash between a commit and its cleanup).
        Caller holds the lock: every token is referenced before anything is appended to it."""
        live = set()
        for f in (self.root / "refs" / "branches").iterdir():
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
                live.add(json.loads(f.read_bytes())["staging"])
        for f in (self.root / "staging").iterdir():
            if f.name.endswith(".jsonl") and f.name[: -len(".jsonl")] not in live:
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()

    def _step(self, name: str) -> None:
        delay = os.environ.get(STEP_DELAY_ENV)
        if delay:
            time.sleep(float(delay))

    # -------------------------------------------------------------------- refs
    def create_branch(self, name: str, source_ref: str) -> str:
        validate_branch_name(name)
        with self._locked():
            if self._branch_file(name).exists():
                raise BranchExists(f"branch {name!r} already exists")
            head = self.resolve(source_ref)
            self._write_branch_state(name, head)
        return head

    def delete_branch(self, name: str) -> None:
        if name == self.main_branch:
            raise DataRepoError(f"refusing to delete the main branch {name!r}")
        with self._locked():
            state = self._require_branch(name)
            self._branch_file(name).unlink()
            self._sync_dir(self._branch_file(name).parent)
            self._drop_staging(state["staging"])

    def list_branches(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in (self.root / "refs" / "branches").iterdir():
            try:
                out[unquote(f.name)] = json.loads(f.read_bytes())["head"]
            except FileNotFoundError:  # deleted while listing
                continue
        return dict(sorted(out.items()))

    def branch_exists(self, name: str) -> bool:
        return self._branch_state(name) is not None

    def create_tag(self, name: str, ref: str) -> str:
        validate_tag_name(name)
        with self._locked():
            commit_id = self.resolve(ref)
            path = self._tag_file(name)
            if path.exists():
                raise DataRepoError(f"tag {name!r} already exists (at {path.read_text().strip()})")
            self._atomic_write(path, commit_id.encode())
        return commit_id

    def _tag_target(self, name: str) -> str | None:
        try:
            validate_tag_name(name)
            return self._tag_file(name).read_text().strip()
        except (InvalidName, FileNotFoundError):
            return None

    def list_tags(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in (self.root / "refs" / "tags").iterdir():
            with contextlib.suppress(FileNotFoundError):
                out[unquote(f.name)] = f.read_text().strip()
        return dict(sorted(out.items()))

    def resolve(self, ref: str) -> str:
        """A branch head, else a tag, else a full commit id."""
        if not isinstance(ref, str) or not ref:
            raise RefNotFound(f"invalid ref {ref!r}")
        state = self._branch_state(ref)
        if state is not None:
            return state["head"]
        tag = self._tag_target(ref)
        if tag is not None:
            return tag
        if HEX64.match(ref) and self._cas_path("commits", ref).is_file():
            return ref
        raise RefNotFound(f"no branch, tag or commit named {ref!r}")

    # ----------------------------------------------------------------- objects
    def _lookup(self, ref: str, path: str) -> str | None:
        """Digest of ``path`` at ``ref`` (a branch's staging area included), or None."""
        view = self._branch_view(ref)
        if view is not None:
            head, staging = view
            if path in staging:
                return staging[path]
            return self._tree(self._commit_doc(head)["tree"]).get(path)
        return self._tree(self._commit_doc(self.resolve(ref))["tree"]).get(path)

    def _entries(self, ref: str) -> dict[str, str]:
        view = self._branch_view(ref)
        if view is None:
            return self._tree(self._commit_doc(self.resolve(ref))["tree"])
        head, staging = view
        entries = dict(self._tree(self._commit_doc(head)["tree"]))
        for path, digest in staging.items():
            if digest is None:
                entries.pop(path, None)
            else:
                entries[path] = digest
        return entries

    def _stage(self, branch: str, path: str, digest: str) -> None:
        with self._locked():
            state = self._require_branch(branch)
            if not self._cas_path("objects", digest).is_file():  # collected by `ratchet gc` since stored
                raise DataRepoError(f"object {digest} for {path!r} vanished before it was staged; write it again")
            self._append_staging(state["staging"], {"p": path, "d": digest})

    def put_object(self, branch: str, path: str, data: bytes) -> None:
        validate_path(path)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DataRepoError(f"object data must be bytes, got {type(data).__name__}")
        self._require_branch(branch)  # fail fast before writing a possibly large object
        self._stage(branch, path, self._store("objects", bytes(data)))

    def write_dataframe(self, branch: str, path: str, df: pd.DataFrame) -> None:
        """Parquet straight into the object store: no in-memory copy of the file."""
        self._stage_written(branch, path, lambda tmp: df.to_parquet(tmp, index=False))

    def write_frames(self, branch: str, path: str, frames: Iterable[pd.DataFrame]) -> int:
        """Parquet chunk by chunk straight into the object store: memory holds one chunk."""
        from ratchet.data.repository.parquet import write_parquet

        rows: list[int] = []
        self._stage_written(branch, path, lambda tmp: rows.append(write_parquet(tmp, frames)))
        return rows[0]

    def put_file(self, branch: str, path: str, file: Path) -> None:
        """A local file copied into the object store, never read into memory whole."""
        self._stage_written(branch, path, lambda tmp: shutil.copyfile(file, tmp))

    def _stage_written(self, branch: str, path: str, write: Callable[[Path], Any]) -> None:
        """Stage at ``path`` the object ``write(tmp)`` writes to a temporary file of the store."""
        validate_path(path)
        self._require_branch(branch)
        tmp = self._new_tmp()
        try:
            write(tmp)
            h = hashlib.sha256()
            with open(tmp, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
                if self._fsync:
                    os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        digest = h.hexdigest()
        target = self._cas_path("objects", digest)
        if self._touch(target):
            tmp.unlink()
        else:
            self._install(tmp, target)
        self._stage(branch, path, digest)

    def read_dataframe(self, ref: str, path: str) -> pd.DataFrame:
        """Parquet read from the object file itself (pyarrow reads files faster than bytes)."""
        import pandas as pd

        return pd.read_parquet(self._object_file(ref, path))

    def _object_file(self, ref: str, path: str) -> Path:
        validate_path(path)
        digest = self._lookup(ref, path)
        if digest is None:
            raise ObjectNotFound(f"no object {path!r} at {ref!r}")
        target = self._cas_path("objects", digest)
        if not target.is_file():
            raise DataRepoError(f"repository damaged: object {digest} for {path!r} missing (run fsck)")
        return target

    def delete_object(self, branch: str, path: str) -> None:
        validate_path(path)
        with self._locked():
            state = self._require_branch(branch)
            staging = self._staging(state["staging"])
            committed = self._tree(self._commit_doc(state["head"])["tree"]).get(path)
            current = staging[path] if path in staging else committed
            if current is None:
                raise ObjectNotFound(f"no object {path!r} on branch {branch!r}")
            # staged only: unstaging restores the committed state (absent)
            record = {"p": path} if committed is None else {"p": path, "d": None}
            self._append_staging(state["staging"], record)

    def get_object(self, ref: str, path: str) -> bytes:
        return self._object_file(ref, path).read_bytes()

    def list_objects(self, ref: str, prefix: str = "") -> list[str]:
        return sorted(p for p in self._entries(ref) if p.startswith(prefix))

    def has_uncommitted_changes(self, branch: str) -> bool:
        view = self._branch_view(branch)
        if view is None:
            raise RefNotFound(f"no branch {branch!r}")
        return bool(view[1])

    def uncommitted(self, branch: str) -> list[Change]:
        """The branch's staged changes against its head commit."""
        view = self._branch_view(branch)
        if view is None:
            raise RefNotFound(f"no branch {branch!r}")
        head, staging = view
        tree = self._tree(self._commit_doc(head)["tree"])
        before = {p: tree[p] for p in staging if p in tree}
        after = {p: d for p, d in staging.items() if d is not None}
        return tree_diff(before, after)

    # ----------------------------------------------------------------- history
    def commit(self, branch: str, message: str, metadata: dict[str, str] | None = None) -> str:
        meta = normalize_metadata(metadata)
        with self._locked():
            state = self._require_branch(branch)
            staging = self._staging(state["staging"])
            if not staging:
                raise NothingToCommit(f"nothing to commit on branch {branch!r}")
            entries = dict(self._tree(self._commit_doc(state["head"])["tree"]))
            for path, digest in staging.items():
                if digest is None:
                    entries.pop(path, None)
                else:
                    entries[path] = digest
            tree = self._write_tree(entries)
            self._step("tree")
            commit_id = self._write_commit(tree, [state["head"]], str(message), meta)
            self._step("commit")
            self._write_branch_state(branch, commit_id)
            self._step("ref")
            self._drop_staging(state["staging"])
        return commit_id

    def _to_commit(self, commit_id: str, doc: dict[str, Any]) -> Commit:
        return Commit(
            id=commit_id,
            parents=tuple(doc["parents"]),
            message=doc["message"],
            metadata=dict(doc["metadata"]),
            created_at=float(doc["created_at"]),
        )

    def get_commit(self, commit_id: str) -> Commit:
        """The commit named by a commit id (or any ref)."""
        cid = self.resolve(commit_id)
        return self._to_commit(cid, self._commit_doc(cid))

    def commit_tree(self, ref: str) -> str:
        """Digest of the tree of ``ref``'s commit (equal digests: equal content)."""
        return self._commit_doc(self.resolve(ref))["tree"]

    def log(self, ref: str, limit: int | None = None) -> list[Commit]:
        start = self.resolve(ref)
        out: list[Commit] = []
        seen = {start}
        doc = self._commit_doc(start)
        heap: list[tuple[float, int, str]] = [(-doc["created_at"], -doc["generation"], start)]
        while heap and (limit is None or len(out) < limit):
            _, _, cid = heapq.heappop(heap)
            doc = self._commit_doc(cid)
            out.append(self._to_commit(cid, doc))
            for p in doc["parents"]:
                if p not in seen:
                    seen.add(p)
                    pd = self._commit_doc(p)
                    heapq.heappush(heap, (-pd["created_at"], -pd["generation"], p))
        return out

    def diff(self, left_ref: str, right_ref: str) -> list[Change]:
        left = self._tree(self._commit_doc(self.resolve(left_ref))["tree"])
        right = self._tree(self._commit_doc(self.resolve(right_ref))["tree"])
        return tree_diff(left, right)

    def merge_base(self, a: str, b: str) -> str | None:
        """A lowest common ancestor of two refs (None for unrelated histories).

        Walks both histories newest generation first; the first commit reached
        from both sides has the highest generation among common ancestors, so
        it cannot be an ancestor of another common ancestor.
        """
        a, b = self.resolve(a), self.resolve(b)
        if a == b:
            return a
        flags: dict[str, int] = {a: 1, b: 2}
        heap = [(-self._commit_doc(c)["generation"], c) for c in (a, b)]
        heapq.heapify(heap)
        while heap:
            _, cid = heapq.heappop(heap)
            f = flags[cid]
            if f == 3:
                return cid
            for p in self._commit_doc(cid)["parents"]:
                old = flags.get(p, 0)
                if old | f != old:
                    flags[p] = old | f
                    heapq.heappush(heap, (-self._commit_doc(p)["generation"], p))
        return None

    def merge(
        self,
        source_ref: str,
        dest_branch: str,
        message: str | None = None,
        metadata: dict[str, str] | None = None,
        strategy: MergeStrategy = "fail",
    ) -> str:
        check_strategy(strategy)
        meta = normalize_metadata(metadata)
        with self._locked():
            source = self.resolve(source_ref)  # a source branch merges its committed head
            dest_state = self._require_branch(dest_branch)
            staged = self._staging(dest_state["staging"])
            if staged:
                raise DataRepoError(
                    f"cannot merge into {dest_branch!r}: it has uncommitted changes "
                    f"({len(staged)} path(s)); commit or discard them first"
                )
            dest = dest_state["head"]
            base = self.merge_base(source, dest)
            if base == source:
                return dest  # source already merged: nothing to do
            base_tree = self._tree(self._commit_doc(base)["tree"]) if base else {}
            merged = three_way_merge(
                base_tree,
                self._tree(self._commit_doc(source)["tree"]),
                self._tree(self._commit_doc(dest)["tree"]),
                strategy,
            )
            tree = self._write_tree(merged)
            msg = message or f"Merge '{source_ref}' into '{dest_branch}'"
            commit_id = self._write_commit(tree, [dest, source], msg, meta)
            self._write_branch_state(dest_branch, commit_id)
            self._drop_staging(dest_state["staging"])
        return commit_id

    # ------------------------------------------------------------------ checks
    def fsck(self) -> list[str]:
        """Verify every stored digest and that every ref reaches complete data.

        Returns the problems found (empty: the repository is sound).
        Unreferenced objects (left by a crash mid-commit) are not problems.
        """
        problems: list[str] = []
        present: dict[str, set[str]] = {}
        for kind in ("objects", "trees", "commits"):
            found: set[str] = set()
            for shard in sorted((self.root / kind).iterdir()):
                for f in sorted(shard.iterdir()):
                    digest = shard.name + f.name
                    h = hashlib.sha256()
                    with open(f, "rb") as fh:
                        for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                            h.update(chunk)
                    if h.hexdigest() != digest:
                        problems.append(f"{kind[:-1]} {digest}: content digest is {h.hexdigest()}")
                    else:
                        found.add(digest)
            present[kind] = found
        checked_trees: set[str] = set()

        def check_tree(tree: str, where: str) -> None:
            if tree in checked_trees:
                return
            checked_trees.add(tree)
            if tree not in present["trees"]:
                problems.append(f"{where}: tree {tree} missing or corrupt")
                return
            for path, digest in json.loads(self._cas_path("trees", tree).read_bytes()).items():
                if digest not in present["objects"]:
                    problems.append(f"{where}: object {digest} for {path!r} missing or corrupt")

        for cid in sorted(present["commits"]):
            doc = json.loads(self._cas_path("commits", cid).read_bytes())
            check_tree(doc["tree"], f"commit {cid}")
            for p in doc["parents"]:
                if p not in present["commits"]:
                    problems.append(f"commit {cid}: parent {p} missing or corrupt")
        for f in sorted((self.root / "refs" / "branches").iterdir()):
            name = unquote(f.name)
            try:
                state = json.loads(f.read_bytes())
                head, staging = state["head"], self._staging(state["staging"])
            except (ValueError, KeyError, TypeError, OSError) as e:
                problems.append(f"branch {name!r}: unreadable ref file ({e})")
                continue
            if head not in present["commits"]:
                problems.append(f"branch {name!r}: head commit {head} missing or corrupt")
            for path, digest in staging.items():
                if digest is not None and digest not in present["objects"]:
                    problems.append(f"branch {name!r}: staged object {digest} for {path!r} missing")
        for f in sorted((self.root / "refs" / "tags").iterdir()):
            target = f.read_text().strip()
            if target not in present["commits"]:
                problems.append(f"tag {unquote(f.name)!r}: commit {target} missing or corrupt")
        if not (self.root / "refs" / "branches" / self._ref_file_name(self.main_branch)).exists():
            problems.append(f"main branch {self.main_branch!r} missing")
        return problems
