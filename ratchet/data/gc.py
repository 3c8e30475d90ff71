"""Garbage collection of the data repository (``ratchet gc``).

Two parts, in this order:

``rejected_branches``
    An ingest branch whose batch was rejected stays for inspection (``ratchet.data.ingest``).
    Past ``retention.rejected_branch_age_days`` its report is copied to
    ``<home>/reports/rejected/<batch id>.json`` (with the branch and commit it came from), then
    the branch is deleted. Any backend (lakeFS too).

``repository``
    The embedded repository's files that nothing reaches: a commit, tree or object is live when
    a branch (its head, and the objects of its staging log), a tag or an extra root (the data
    commits named by the ledger and by registered versions) reaches it, or when it is younger
    than the grace period (a write in flight: an object is stored before it is staged). The rest
    is deleted under the repository's lock, commits first (newest generation first, so a
    commit's parents outlive it), then trees, then objects, so at every moment each remaining
    commit has its tree and parents and each remaining tree its objects: a SIGKILL anywhere
    leaves ``fsck`` clean, and the next run finishes the job. Refs are never rewritten; a
    branch is deleted (one unlink) before its files are collected. lakeFS collects its own.

Crash testing hook: ``RATCHET_GC_STEP_DELAY`` (seconds) is slept after each file deleted, so
a test can SIGKILL a collection at a random moment of any phase (as
``RATCHET_DATA_COMMIT_STEP_DELAY`` does for a commit).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ratchet.core.files import atomic_write
from ratchet.core.reclaim import Reclaimed
from ratchet.data.batch_ref import BRANCH_PREFIX, BatchRef
from ratchet.data.repository.base import DataRepoError, DataRepository
from ratchet.data.repository.embedded import EmbeddedRepository

KINDS = ("commits", "trees", "objects")  # the order files are deleted in
TMP_MIN_AGE_S = 3600.0  # a temporary file is renamed into place within seconds by its writer
DAY_S = 86400.0
STEP_DELAY_ENV = "RATCHET_GC_STEP_DELAY"


@dataclass(frozen=True)
class RejectedBranch:
    name: str
    commit: str
    batch_id: str
    created_at: float


def rejected_branches(repo: DataRepository, older_than: float) -> list[RejectedBranch]:
    """Ingest branches whose head is a rejected batch's commit made before ``older_than``
    (unix seconds). A branch of an ingest still running (no commit yet) is never one."""
    out = []
    for name, head in repo.list_branches().items():
        if not name.startswith(BRANCH_PREFIX):
            continue
        try:
            commit = repo.get_commit(head)
        except DataRepoError:
            continue
        if commit.metadata.get("ratchet.status") == "rejected" and commit.created_at < older_than:
            batch_id = commit.metadata.get("ratchet.batch_id") or name.removeprefix(BRANCH_PREFIX)
            out.append(RejectedBranch(name, head, batch_id, commit.created_at))
    return out


def keep_report(repo: DataRepository, branch: RejectedBranch, folder: Path) -> Path:
    """The branch's audit report (and where it came from) as ``folder/<batch id>.json``."""
    try:
        report: Any = json.loads(repo.get_object(branch.commit, BatchRef(branch.batch_id).report_key))
    except (DataRepoError, ValueError):
        report = None
    doc = {"batch_id": branch.batch_id, "branch": branch.name, "commit": branch.commit,
           "committed_at": branch.created_at, "metadata": repo.get_commit(branch.commit).metadata,
           "report": report, "branch_deleted_at": time.time()}
    return atomic_write(Path(folder) / f"{branch.batch_id}.json", json.dumps(doc, indent=2, default=str), fsync=True)


def prune_rejected_branches(repo: DataRepository, reports_dir: Path, max_age_days: float, *,
                            dry_run: bool = False, now: float | None = None) -> Reclaimed:
    """Delete rejected ingest branches older than ``max_age_days``, their reports kept first.
    The files they alone reached are freed by ``prune_unreachable`` (counted there)."""
    out = Reclaimed("rejected_branches", dry_run)
    cutoff = (time.time() if now is None else now) - max_age_days * DAY_S
    for branch in rejected_branches(repo, cutoff):
        if not dry_run:
            keep_report(repo, branch, reports_dir)
            repo.delete_branch(branch.name)
        out.add("branches", 0, branch.name)
    if out.items:
        out.kept["reports"] = str(reports_dir)
    return out


# ------------------------------------------------------------------ unreachable files
def _listing(folder: Path) -> dict[str, os.stat_result]:
    """digest -> stat of every file of a content-addressed folder (``objects/ab/cdef...``)."""
    out: dict[str, os.stat_result] = {}
    for shard in folder.iterdir():
        if not shard.is_dir():
            continue
        for f in shard.iterdir():
            try:
                out[shard.name + f.name] = f.stat()
            except FileNotFoundError:
                pass
    return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def _live(repo: EmbeddedRepository, present: dict[str, dict[str, os.stat_result]], roots: Iterable[str],
          staged: set[str], young: float) -> dict[str, set[str]]:
    """What is reached from ``roots`` (commit ids), from files modified at or after ``young``
    and (objects) from ``staged``. Read from the files, not the repository's caches."""
    live: dict[str, set[str]] = {"commits": set(), "trees": set(), "objects": set(staged)}
    for kind in KINDS:
        live[kind] |= {d for d, st in present[kind].items() if st.st_mtime >= young}
    todo = [c for c in roots if c in present["commits"]] + list(live["commits"])
    live["commits"] = set()
    while todo:
        cid = todo.pop()
        if cid in live["commits"]:
            continue
        live["commits"].add(cid)
        doc = _read_json(repo._cas_path("commits", cid))
        if isinstance(doc, dict):
            live["trees"].add(doc.get("tree"))
            todo.extend(p for p in doc.get("parents", []) if p in present["commits"])
    for tree in live["trees"] & present["trees"].keys():
        entries = _read_json(repo._cas_path("trees", tree))
        if isinstance(entries, dict):
            live["objects"].update(entries.values())
    return live


def _generation(repo: EmbeddedRepository, cid: str) -> float:
    doc = _read_json(repo._cas_path("commits", cid))
    return float(doc.get("generation", 0)) if isinstance(doc, dict) else float("inf")


def prune_unreachable(repo: DataRepository, *, extra_roots: Iterable[str] = (), without_branches: Iterable[str] = (),
                      grace_s: float = 3600.0, dry_run: bool = False, now: float | None = None) -> Reclaimed:
    """Delete the embedded repository's commits, trees and objects that no branch, tag or
    ``extra_roots`` commit reaches and that are older than ``grace_s``; staging logs no branch
    names and stale temporary files too. ``without_branches``: count as if these branches were
    deleted already (a dry run of ``prune_rejected_branches``)."""
    out = Reclaimed("repository", dry_run)
    if not isinstance(repo, EmbeddedRepository):
        out.skipped = "lakeFS collects its own unreferenced objects (its garbage collection job)"
        return out
    now = time.time() if now is None else now
    gone = set(without_branches)
    with repo._locked():  # no commit, merge or stage runs meanwhile (objects are stored unlocked: grace)
        branches = {}
        for f in (repo.root / "refs" / "branches").iterdir():
            state = _read_json(f)
            if not (isinstance(state, dict) and isinstance(state.get("head"), str)):  # never guess a root
                raise DataRepoError(f"branch {unquote(f.name)!r}: unreadable ref file {f}; nothing collected "
                                    "(see `ratchet data fsck`)")
            branches[unquote(f.name)] = state
        tokens = {s.get("staging") for name, s in branches.items() if name not in gone}
        staged = {d for t in tokens if t for d in repo._staging(t).values() if d}
        roots = [s["head"] for name, s in branches.items() if name not in gone]
        roots += list(repo.list_tags().values()) + list(extra_roots)
        present = {kind: _listing(repo.root / kind) for kind in KINDS}
        live = _live(repo, present, roots, staged, now - grace_s)
        doomed = {kind: set(present[kind]) - live[kind] for kind in KINDS}
        every_token = {s.get("staging") for s in branches.values()}
        for log in (repo.root / "staging").iterdir():
            if log.name.endswith(".jsonl") and log.name.removesuffix(".jsonl") not in (tokens if dry_run else every_token):
                out.add("staging_logs", _size(log))
        tmp_cutoff = now - max(grace_s, TMP_MIN_AGE_S)
        stale_tmp = [f for f in (repo.root / "tmp").iterdir() if _mtime(f) < tmp_cutoff]
        if dry_run:
            for kind in KINDS:
                for d in doomed[kind]:
                    out.add(kind, present[kind][d].st_size)
            for f in stale_tmp:
                out.add("tmp", _size(f))
            return out
        repo._drop_orphan_staging()
        order = {"commits": sorted(doomed["commits"], key=lambda c: -_generation(repo, c)),
                 "trees": sorted(doomed["trees"]), "objects": sorted(doomed["objects"])}
        young = now - grace_s
        delay = float(os.environ.get(STEP_DELAY_ENV) or 0)
        for kind in KINDS:  # all commits before any tree, all trees before any object
            folders = set()
            for d in order[kind]:
                path = repo._cas_path(kind, d)
                try:
                    if path.stat().st_mtime >= young:  # stored again meanwhile (a writer's dedup): live
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue
                out.add(kind, present[kind][d].st_size)
                folders.add(path.parent)
                if delay:
                    time.sleep(delay)
            for folder in folders:
                repo._sync_dir(folder)
        for f in stale_tmp:
            nbytes = _size(f)
            try:
                f.unlink()
            except OSError:
                continue
            out.add("tmp", nbytes)
    return out


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return float("inf")
