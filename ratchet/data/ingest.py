"""Write-audit-publish for one batch.

The batch goes to its own branch ``ingest/<time>-<digest>``, is profiled and
checked there, committed with its report, and merged into main only when it
passes. A rejected batch stays on its branch for inspection; main never moves.

A batch is named by its content digest (``content_digest``: the typed rows as a
multiset), and a batch whose digest main already holds is a duplicate: nothing
is written, no branch created, and the result names the commit that published
those rows. main "holds" a digest when a path under ``data.batch_prefix`` ends
with it, so the lookup lists paths and reads no batch, on every backend.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ratchet.core.config import DataConfig, DriftConfig
from ratchet.core.schema import Schema
from ratchet.data.checks import BatchRejected, Violation, check_batch, read_batch
from ratchet.data.profiling import (
    deserialize_profile,
    drift_report,
    merge_profiles,
    profile_frame,
    serialize_profile,
)
from ratchet.data.repository.base import DataRepository
from ratchet.data.rows import content_digest

PROFILE_PREFIX = "profiles/"
REPORT_PREFIX = "reports/"
REJECTED_PREFIX = "rejected/"
DIGEST_CHARS = 12  # of the sha256 in a batch id: 48 bits, a collision needs ~16 million batches


class IngestRejected(Exception):
    """A batch failed its audit; ``report`` says which column broke which rule."""

    def __init__(self, message: str, report: dict[str, Any]):
        super().__init__(message)
        self.report = report


@dataclass
class AuditedBatch:
    batch_id: str
    source: str
    frame: pd.DataFrame | None
    violations: list[Violation] = field(default_factory=list)
    profile: bytes | None = None
    warnings: list[Violation] = field(default_factory=list)  # reported, reject nothing (checks.py)
    drift: dict[str, Any] | None = None
    digest: str = ""  # sha256 of the typed rows (of the file's bytes when it could not be read)
    file_digest: str = ""  # sha256 of the file's bytes: what batch ids ended with before content digests
    concept: dict[str, Any] | None = None  # the champion's score on this batch (ratchet.monitoring.concept)
    metadata: dict[str, str] = field(default_factory=dict)  # extra commit metadata (the score, as strings)

    @property
    def ok(self) -> bool:
        return not self.violations

    def report(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "source": self.source,
            "rows": None if self.frame is None else len(self.frame),
            "status": "passed" if self.ok else "rejected",
            "violations": [v.to_dict() for v in self.violations],
            "warnings": [v.to_dict() for v in self.warnings],
            "drift": self.drift,
            "concept": self.concept,
        }


@dataclass(frozen=True)
class Duplicate:
    """The batch on main that already holds a batch's rows, and the commit that published it."""

    batch_id: str
    path: str
    commit: str

    def to_dict(self) -> dict[str, str]:
        return {"batch_id": self.batch_id, "path": self.path, "commit": self.commit}


@dataclass(frozen=True)
class IngestResult:
    """A batch's fate: ``published`` (``commit`` is main's new head), ``rejected``
    (``commit`` is the ingest branch's, kept for inspection) or ``duplicate`` (main
    already holds these rows: ``commit`` published them, nothing was written), with
    its audit report."""

    status: str
    branch: str
    commit: str
    report: dict[str, Any]
    duplicate_of: Duplicate | None = None

    @classmethod
    def of(cls, audited: AuditedBatch, status: str, branch: str, commit: str) -> IngestResult:
        return cls(status, branch, commit, audited.report())

    @classmethod
    def duplicate(cls, audited: AuditedBatch, earlier: Duplicate, main_branch: str) -> IngestResult:
        return cls("duplicate", main_branch, earlier.commit, audited.report(), earlier)

    def to_dict(self) -> dict[str, Any]:
        out = {**self.report, "status": self.status, "branch": self.branch, "commit": self.commit}
        if self.duplicate_of is not None:
            out["duplicate_of"] = self.duplicate_of.to_dict()
        return out


def describe(result: dict[str, Any]) -> str:
    """One line for a published or duplicate ``IngestResult.to_dict()`` (the CLI's human output)."""
    d = result.get("duplicate_of")
    if d:
        return (f"duplicate: main already holds these {result['rows']} rows as batch {d['batch_id']}, "
                f"published in commit {d['commit'][:12]}; nothing written")
    return f"published {result['rows']} rows; main at {result['commit'][:12]}"


def batch_id_for(digest: str) -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + f"-{digest[:DIGEST_CHARS]}"


def audit_batch(path: Path, schema: Schema) -> AuditedBatch:
    """Read, type, check and profile a batch; collect every violation."""
    path = Path(path)
    file_digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    try:
        raw = read_batch(path, schema)
    except BatchRejected as e:
        return AuditedBatch(batch_id_for(file_digest), str(path), None, list(e.violations),
                            digest=file_digest, file_digest=file_digest)
    typed, violations = check_batch(raw, schema)
    digest = content_digest(typed)
    audited = AuditedBatch(batch_id_for(digest), str(path), typed, [v for v in violations if v.fatal],
                           digest=digest, file_digest=file_digest,
                           warnings=[v for v in violations if not v.fatal])
    if audited.ok:
        audited.profile = serialize_profile(profile_frame(typed))
    return audited


def reference_profile(repo: DataRepository, ref: str, last: int | None = None) -> Any | None:
    """Merged whylogs profile of the batches at ``ref`` (the last ``last`` ones)."""
    paths = [p for p in repo.list_objects(ref, PROFILE_PREFIX) if p.endswith(".bin")]
    if last:
        paths = paths[-last:]
    if not paths:
        return None
    return merge_profiles([deserialize_profile(repo.get_object(ref, p)) for p in paths])


def find_duplicate(repo: DataRepository, audited: AuditedBatch, cfg: DataConfig) -> Duplicate | None:
    """The batch on main with this batch's digest, if any; only a batch that passed its checks
    can be a duplicate (a rejected one is reported as rejected). Batch ids written before
    content digests end with the file's digest, so that one is looked for too."""
    if not audited.ok:
        return None
    ends = tuple(f"-{d[:DIGEST_CHARS]}.parquet" for d in (audited.digest, audited.file_digest))
    held = [p for p in repo.list_objects(cfg.main_branch, cfg.batch_prefix) if p.endswith(ends)]
    if not held:
        return None
    batch_id = held[0].rsplit("/", 1)[-1].removesuffix(".parquet")
    return Duplicate(batch_id, held[0], publishing_commit(repo, cfg.main_branch, batch_id))


def publishing_commit(repo: DataRepository, branch: str, batch_id: str) -> str:
    """The newest commit on ``branch`` naming ``batch_id`` in its metadata (the merge that
    published it); the branch's head for a batch written without ``ratchet ingest``."""
    for c in repo.log(branch):
        if c.metadata.get("ratchet.batch_id") == batch_id:
            return c.id
    return repo.resolve(branch)


def measure_drift(
    repo: DataRepository, audited: AuditedBatch, cfg: DataConfig, drift: DriftConfig, schema: Schema
) -> None:
    ref = reference_profile(repo, cfg.main_branch)
    if ref is None or audited.profile is None:
        return
    report = drift_report(ref, deserialize_profile(audited.profile), drift, columns=schema.feature_names)
    audited.drift = report.to_dict()
    if cfg.drift_gate and report.detected:
        drifted = [k for k, v in report.features.items() if v["drifted"]]
        audited.violations.append(
            Violation(None, "drift", f"batch drifts from main on {len(drifted)} feature(s): {', '.join(drifted)}")
        )


def stage_batch(repo: DataRepository, audited: AuditedBatch, path: Path, cfg: DataConfig) -> str:
    """Create the ingest branch and write the batch, its profile and report to it."""
    # lakeFS branch names allow no "/" (^\w[-\w]*$), so not ingest/<...> as in git
    branch = f"ingest-{audited.batch_id}"
    repo.create_branch(branch, cfg.main_branch)
    if audited.ok:
        repo.write_dataframe(branch, f"{cfg.batch_prefix}{audited.batch_id}.parquet", audited.frame)
        repo.put_object(branch, f"{PROFILE_PREFIX}{audited.batch_id}.bin", audited.profile)
    elif Path(path).is_file():
        # keep the raw bytes of a rejected batch on its branch for inspection
        repo.put_object(branch, f"{REJECTED_PREFIX}{audited.batch_id}{Path(path).suffix}", Path(path).read_bytes())
    repo.put_object(
        branch, f"{REPORT_PREFIX}{audited.batch_id}.json", json.dumps(audited.report(), indent=2, default=str).encode()
    )
    return branch


def commit_batch(repo: DataRepository, branch: str, audited: AuditedBatch) -> str:
    status = "passed" if audited.ok else "rejected"
    return repo.commit(
        branch,
        f"ingest {audited.batch_id} ({status})",
        metadata={
            "ratchet.batch_id": audited.batch_id,
            "ratchet.digest": audited.digest,
            "ratchet.source": audited.source,
            "ratchet.status": status,
            "ratchet.rows": str(0 if audited.frame is None else len(audited.frame)),
            "ratchet.violations": json.dumps([v.to_dict() for v in audited.violations])[:4000],
            **audited.metadata,
        },
    )


def publish_batch(repo: DataRepository, branch: str, audited: AuditedBatch, cfg: DataConfig) -> str:
    """Merge a passed batch into main and drop its branch; return main's new commit."""
    commit = repo.merge(
        branch, cfg.main_branch, message=f"publish {audited.batch_id}",
        metadata={"ratchet.batch_id": audited.batch_id, "ratchet.digest": audited.digest}, strategy="fail",
    )
    repo.delete_branch(branch)
    return commit


def rejection_message(audited: AuditedBatch) -> str:
    lines = [f"batch {audited.source} rejected ({len(audited.violations)} violation(s)):"]
    lines += [f"  - [{v.rule}] {v.column or '(batch)'}: {v.message}" for v in audited.violations]
    return "\n".join(lines)
