"""Write-audit-publish for one batch.

The batch goes to its own branch ``ingest/<time>-<digest>``, is profiled and
checked there, committed with its report, and merged into main only when it
passes. A rejected batch stays on its branch for inspection; main never moves.
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

PROFILE_PREFIX = "profiles/"
REPORT_PREFIX = "reports/"
REJECTED_PREFIX = "rejected/"


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
    drift: dict[str, Any] | None = None

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
            "drift": self.drift,
        }


@dataclass(frozen=True)
class IngestResult:
    """A batch's fate: ``published`` (``commit`` is main's new head) or ``rejected``
    (``commit`` is the ingest branch's, kept for inspection), with its audit report."""

    status: str
    branch: str
    commit: str
    report: dict[str, Any]

    @classmethod
    def of(cls, audited: AuditedBatch, status: str, branch: str, commit: str) -> IngestResult:
        return cls(status, branch, commit, audited.report())

    def to_dict(self) -> dict[str, Any]:
        return {**self.report, "status": self.status, "branch": self.branch, "commit": self.commit}


def batch_id_for(path: Path) -> str:
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12] if Path(path).is_file() else "missing"
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + f"-{digest}"


def audit_batch(path: Path, schema: Schema) -> AuditedBatch:
    """Read, type, check and profile a batch; collect every violation."""
    bid = batch_id_for(path)
    try:
        raw = read_batch(Path(path), schema)
    except BatchRejected as e:
        return AuditedBatch(bid, str(path), None, list(e.violations))
    typed, violations = check_batch(raw, schema)
    audited = AuditedBatch(bid, str(path), typed, list(violations))
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
            "ratchet.source": audited.source,
            "ratchet.status": status,
            "ratchet.rows": str(0 if audited.frame is None else len(audited.frame)),
            "ratchet.violations": json.dumps([v.to_dict() for v in audited.violations])[:4000],
        },
    )


def publish_batch(repo: DataRepository, branch: str, audited: AuditedBatch, cfg: DataConfig) -> str:
    """Merge a passed batch into main and drop its branch; return main's new commit."""
    commit = repo.merge(
        branch, cfg.main_branch, message=f"publish {audited.batch_id}",
        metadata={"ratchet.batch_id": audited.batch_id}, strategy="fail",
    )
    repo.delete_branch(branch)
    return commit


def rejection_message(audited: AuditedBatch) -> str:
    lines = [f"batch {audited.source} rejected ({len(audited.violations)} violation(s)):"]
    lines += [f"  - [{v.rule}] {v.column or '(batch)'}: {v.message}" for v in audited.violations]
    return "\n".join(lines)
