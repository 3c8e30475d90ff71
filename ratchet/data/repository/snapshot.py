"""A consistent copy of an embedded repository while writers run: its refs at one instant,
then every file they reach (``ratchet backup``, ``ratchet.runtime.backup``).

The refs (every branch and tag file, and each branch's staging log up to its last complete
line) are read at one instant, under the repository's lock (``lock``, the ``fcntl.flock``
every ref update holds), so no commit, merge or stage lands halfway through them. Then the
commits those refs reach (all their ancestors), the trees of those commits and the objects of
those trees and of the staged entries are listed, without the lock: every such file is
content-addressed and immutable, so a later write cannot tear it, and a restored copy of the
listed files passes ``fsck``. ``ratchet gc`` may collect a file the snapshot reaches but no
live ref does any more (a branch deleted meanwhile): reading it then raises ``Vanished``, and
the caller takes a new snapshot.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ratchet.data.repository.embedded import MARKER

# the folders of a repository that must exist, even empty (``EmbeddedRepository.open_or_init``)
FOLDERS = ("objects", "trees", "commits", "refs/branches", "refs/tags", "staging", "tmp")


class Vanished(RuntimeError):
    """A file the snapshot reaches was removed meanwhile (garbage collected): take a new one."""


@dataclass
class RepoSnapshot:
    """What to copy: small files by content (``data``), immutable ones by path (``files``),
    both keyed by their path relative to the repository's root."""

    root: Path
    data: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"branches": dict(self.branches), "tags": dict(self.tags), **self.counts}


def is_repository(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def _cas(root: Path, kind: str, digest: str) -> Path:
    return root / kind / digest[:2] / digest[2:]


def _complete_lines(data: bytes) -> bytes:
    """A staging log up to its last newline: a torn last line belongs to a write in flight."""
    return data[: data.rfind(b"\n") + 1]


def _read_refs(root: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Every ref file and the staging logs they name, read under the repository's lock."""
    refs: dict[str, bytes] = {}
    logs: dict[str, bytes] = {}
    with open(root / "lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            for kind in ("branches", "tags"):
                for f in sorted((root / "refs" / kind).iterdir()):
                    refs[f"refs/{kind}/{f.name}"] = f.read_bytes()
            for rel, raw in refs.items():
                if rel.startswith("refs/branches/"):
                    token = json.loads(raw)["staging"]
                    with contextlib.suppress(FileNotFoundError):  # no write staged yet
                        logs[f"staging/{token}.jsonl"] = _complete_lines((root / "staging" / f"{token}.jsonl").read_bytes())
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return refs, logs


def _load(root: Path, kind: str, digest: str) -> Any:
    try:
        return json.loads(_cas(root, kind, digest).read_bytes())
    except FileNotFoundError:
        raise Vanished(f"{kind[:-1]} {digest} of {root} was removed during the snapshot") from None


def snapshot(root: Path | str) -> RepoSnapshot:
    """The files of the repository at ``root`` that its refs, read at one instant, reach."""
    root = Path(root)
    refs, logs = _read_refs(root)
    snap = RepoSnapshot(root, data={MARKER: (root / MARKER).read_bytes(), "lock": b"", **refs, **logs})
    heads: list[str] = []
    for rel, raw in refs.items():
        name = unquote(rel.rsplit("/", 1)[1])
        if rel.startswith("refs/branches/"):
            heads.append(json.loads(raw)["head"])
            snap.branches[name] = heads[-1]
        else:
            heads.append(raw.decode().strip())
            snap.tags[name] = heads[-1]
    commits: set[str] = set()
    trees: set[str] = set()
    objects: set[str] = set()
    todo = list(heads)
    while todo:
        cid = todo.pop()
        if cid in commits:
            continue
        commits.add(cid)
        doc = _load(root, "commits", cid)
        todo.extend(doc["parents"])
        if doc["tree"] not in trees:
            trees.add(doc["tree"])
            objects.update(_load(root, "trees", doc["tree"]).values())
    for raw in logs.values():
        for line in raw.splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                if digest := json.loads(line).get("d"):
                    objects.add(digest)
    for kind, digests in (("commits", commits), ("trees", trees), ("objects", objects)):
        for d in sorted(digests):
            snap.files[f"{kind}/{d[:2]}/{d[2:]}"] = _cas(root, kind, d)
        snap.counts[kind] = len(digests)
    snap.counts["staged_logs"] = len(logs)
    return snap
