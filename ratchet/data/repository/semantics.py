"""What both backends mean by a name, a path, metadata and a merge: lakeFS's rules, in one
place, so the embedded repository and the lakeFS client refuse and merge alike."""

from __future__ import annotations

import re
from typing import Any

from ratchet.data.repository.base import Change, DataRepoError, MergeConflict

MERGE_STRATEGIES: tuple[str, ...] = ("fail", "source-wins", "dest-wins")

HEX64 = re.compile(r"^[0-9a-f]{64}$")
# lakeFS branch ids are ``^\w[-\w]*$``; we also allow '/' between non-empty
# segments so pipelines can namespace branches (``ingest/2026-05-01-abc``).
# Real lakeFS rejects '/', see lakefs_backend.
BRANCH_RE = re.compile(r"^\w[-\w]*(?:/[-\w]+)*$")
_MAX_NAME = 200
_MAX_PATH = 1024


class InvalidName(DataRepoError, ValueError):
    """A branch name, tag name or object path that the repository refuses."""


def validate_branch_name(name: str) -> str:
    if not isinstance(name, str) or not BRANCH_RE.match(name) or len(name) > _MAX_NAME:
        raise InvalidName(
            f"invalid branch name {name!r}: use letters, digits, '_' and '-', starting with a letter, "
            "digit or '_' (segments may be joined by '/'), at most 200 characters"
        )
    return name


def validate_tag_name(name: str) -> str:
    """lakeFS's tag rules (a subset of git-check-ref-format)."""
    ok = (
        isinstance(name, str)
        and 0 < len(name) <= _MAX_NAME
        and name != "@"
        and not name.endswith((".", ".lock", "/"))
        and not name.startswith("/")
        and ".." not in name
        and "//" not in name
        and "@{" not in name
        and not any(c in name for c in "^:?*[\\")
        and all(ord(c) > 0x20 for c in name)
    )
    if not ok:
        raise InvalidName(
            f"invalid tag name {name!r}: no spaces or control characters, none of ^:?*[\\, "
            "no '..', '//' or '@{', not ending in '.', '.lock' or '/'"
        )
    return name


def validate_path(path: str) -> str:
    if not isinstance(path, str) or not path or len(path) > _MAX_PATH or "\x00" in path:
        raise InvalidName(f"invalid object path {path!r}: a non-empty string of at most 1024 characters")
    return path


def normalize_metadata(metadata: dict[str, Any] | None) -> dict[str, str]:
    """Commit metadata is string -> string (as in lakeFS); other values are str()-ed."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise DataRepoError(f"commit metadata must be a mapping, got {type(metadata).__name__}")
    return {str(k): str(v) for k, v in metadata.items()}


def check_strategy(strategy: str) -> str:
    if strategy not in MERGE_STRATEGIES:
        raise DataRepoError(f"unknown merge strategy {strategy!r}: use one of {', '.join(MERGE_STRATEGIES)}")
    return strategy


def three_way_merge(
    base: dict[str, str], source: dict[str, str], dest: dict[str, str], strategy: str
) -> dict[str, str]:
    """Per-path three-way merge of trees; a conflict is a path changed differently on both sides."""
    out = dict(dest)
    conflicts: list[str] = []
    for path in source.keys() | dest.keys() | base.keys():
        b, s, d = base.get(path), source.get(path), dest.get(path)
        if s == d or s == b:
            continue  # same on both sides, or only dest changed: keep dest
        if d == b or strategy == "source-wins":
            chosen = s
        elif strategy == "dest-wins":
            continue
        else:
            conflicts.append(path)
            continue
        if chosen is None:
            out.pop(path, None)
        else:
            out[path] = chosen
    if conflicts:
        raise MergeConflict(conflicts)
    return out


def tree_diff(left: dict[str, str], right: dict[str, str]) -> list[Change]:
    changes: list[Change] = []
    for path in sorted(left.keys() | right.keys()):
        a, b = left.get(path), right.get(path)
        if a == b:
            continue
        kind = "added" if a is None else "removed" if b is None else "changed"
        changes.append(Change(path=path, type=kind))
    return changes


