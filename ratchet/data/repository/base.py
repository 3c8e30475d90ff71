"""The versioned data repository: one interface, lakeFS semantics.

A repository has branches; each branch has a head commit plus a staging area
of uncommitted writes (as in lakeFS). Commits are immutable and named by a
content digest. Refs are branch names, tag names or commit ids.
"""

from __future__ import annotations

import io
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd

MergeStrategy = Literal["fail", "source-wins", "dest-wins"]


class DataRepoError(Exception):
    """Base of every error the data repository raises."""


class RefNotFound(DataRepoError):
    pass


class ObjectNotFound(DataRepoError):
    pass


class BranchExists(DataRepoError):
    pass


class NothingToCommit(DataRepoError):
    pass


class MergeConflict(DataRepoError):
    def __init__(self, paths: list[str]):
        self.paths = sorted(paths)
        super().__init__(f"merge conflict on {len(self.paths)} path(s): {', '.join(self.paths[:10])}")


@dataclass(frozen=True)
class Commit:
    id: str
    parents: tuple[str, ...]
    message: str
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0  # unix seconds


@dataclass(frozen=True)
class Change:
    path: str
    type: Literal["added", "removed", "changed"]


class DataRepository(ABC):
    """Interface every backend implements; the same test suite runs on each."""

    main_branch: str = "main"

    # -- refs -----------------------------------------------------------------
    @abstractmethod
    def create_branch(self, name: str, source_ref: str) -> str:
        """Create ``name`` at ``source_ref``'s commit (no data copied); return that commit id."""

    @abstractmethod
    def delete_branch(self, name: str) -> None: ...

    @abstractmethod
    def list_branches(self) -> dict[str, str]:
        """Branch name -> head commit id."""

    @abstractmethod
    def create_tag(self, name: str, ref: str) -> str: ...

    @abstractmethod
    def list_tags(self) -> dict[str, str]: ...

    @abstractmethod
    def resolve(self, ref: str) -> str:
        """Commit id of a branch head, tag or commit id; RefNotFound otherwise."""

    # -- objects --------------------------------------------------------------
    @abstractmethod
    def put_object(self, branch: str, path: str, data: bytes) -> None:
        """Stage ``data`` at ``path`` on ``branch`` (visible on the branch, not yet committed)."""

    @abstractmethod
    def delete_object(self, branch: str, path: str) -> None: ...

    @abstractmethod
    def get_object(self, ref: str, path: str) -> bytes:
        """Read at a commit id or tag, or a branch (its staging area included)."""

    @abstractmethod
    def list_objects(self, ref: str, prefix: str = "") -> list[str]:
        """Sorted paths under ``prefix`` at ``ref``."""

    # -- history ----------------------------------------------------------------
    @abstractmethod
    def commit(self, branch: str, message: str, metadata: dict[str, str] | None = None) -> str:
        """Commit the branch's staging area; NothingToCommit if it is empty."""

    @abstractmethod
    def get_commit(self, commit_id: str) -> Commit: ...

    @abstractmethod
    def log(self, ref: str, limit: int | None = None) -> list[Commit]:
        """Commits reachable from ``ref``, newest first."""

    @abstractmethod
    def diff(self, left_ref: str, right_ref: str) -> list[Change]:
        """What changes from ``left_ref`` to ``right_ref`` (committed content)."""

    @abstractmethod
    def merge(
        self,
        source_ref: str,
        dest_branch: str,
        message: str | None = None,
        metadata: dict[str, str] | None = None,
        strategy: MergeStrategy = "fail",
    ) -> str:
        """Three-way merge of ``source_ref`` into ``dest_branch``; return the new head."""

    # -- conveniences shared by every backend ------------------------------------
    def write_dataframe(self, branch: str, path: str, df: pd.DataFrame) -> None:
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        self.put_object(branch, path, buf.getvalue())

    def write_frames(self, branch: str, path: str, frames: Iterable[pd.DataFrame]) -> int:
        """Parquet of the frames' rows (one schema), written chunk by chunk to a temporary file
        and staged with ``put_file``: memory holds one chunk whatever the rows. Returns the rows."""
        from ratchet.data.repository.parquet import write_parquet

        with tempfile.TemporaryDirectory(prefix="ratchet-frames-") as tmp:
            file = Path(tmp) / "frames.parquet"
            rows = write_parquet(file, frames)
            self.put_file(branch, path, file)
        return rows

    def put_file(self, branch: str, path: str, file: Path) -> None:
        """Stage a local file's bytes at ``path`` (backends that can stream it override this)."""
        self.put_object(branch, path, Path(file).read_bytes())

    def read_dataframe(self, ref: str, path: str) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.get_object(ref, path)))

    def branch_exists(self, name: str) -> bool:
        return name in self.list_branches()
