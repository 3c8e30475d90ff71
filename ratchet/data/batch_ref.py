"""A published batch's name and where its files are: the one owner of those formats.

A batch id is ``<UTC time to the microsecond>Z-<12 hex of its content digest>``: ids sort by
publication time, and the digest names its rows. On a branch of the data repository a batch
has its rows (``<batch prefix><id>.parquet``), its whylogs profile (``profiles/<id>.bin``) and
its audit report (``reports/<id>.json``); its ingest branch is ``ingest-<id>`` (lakeFS allows
no "/" in a branch name, so not ``ingest/<id>`` as in git).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

PROFILE_PREFIX = "profiles/"
REPORT_PREFIX = "reports/"
REJECTED_PREFIX = "rejected/"
# one object per published content digest, holding the batch id: two ingest branches of the same
# rows both write it, so whichever merges second meets a merge conflict on it, and main takes the
# rows once however the ingests interleave (the duplicate check before staging cannot see a
# batch that is not merged yet). An atomic compare on main, on the embedded repository and lakeFS.
DIGEST_PREFIX = "digests/"
BRANCH_PREFIX = "ingest-"
DIGEST_CHARS = 12  # of the sha256 in a batch id: 48 bits, a collision needs ~16 million batches
_TIME = "%Y%m%dT%H%M%S%fZ"
_TIME_CHARS = 22  # len("20240501T083000123456Z")


@dataclass(frozen=True)
class BatchRef:
    batch_id: str

    @classmethod
    def new(cls, digest: str, now: datetime | None = None) -> BatchRef:
        """The id of a batch published now with this content digest."""
        return cls((now or datetime.now(UTC)).strftime(_TIME) + f"-{digest[:DIGEST_CHARS]}")

    @classmethod
    def from_path(cls, path: str) -> BatchRef:
        """The batch a data file (``.../<id>.parquet``) holds."""
        return cls(path.rsplit("/", 1)[-1].removesuffix(".parquet"))

    def data_key(self, prefix: str) -> str:
        return f"{prefix}{self.batch_id}.parquet"

    @property
    def profile_key(self) -> str:
        return f"{PROFILE_PREFIX}{self.batch_id}.bin"

    @property
    def report_key(self) -> str:
        return f"{REPORT_PREFIX}{self.batch_id}.json"

    def rejected_key(self, suffix: str) -> str:
        return f"{REJECTED_PREFIX}{self.batch_id}{suffix}"

    @staticmethod
    def digest_key(digest: str) -> str:
        """The object that claims a content digest on main (``DIGEST_PREFIX``)."""
        return f"{DIGEST_PREFIX}{digest}"

    @property
    def branch(self) -> str:
        return f"{BRANCH_PREFIX}{self.batch_id}"

    @property
    def published_at(self) -> float:
        """Unix seconds the id was made (at ingest, just before its publication)."""
        return datetime.strptime(self.batch_id[:_TIME_CHARS], _TIME).replace(tzinfo=UTC).timestamp()

    def named_by(self, digest: str) -> bool:
        """Whether the id ends with this digest (a content digest, or a file's for older batches)."""
        return self.batch_id.endswith(f"-{digest[:DIGEST_CHARS]}")
