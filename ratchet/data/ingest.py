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
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ratchet.core.config import DataConfig, DriftConfig
from ratchet.core.progress import step
from ratchet.core.schema import Schema
from ratchet.data.batch_ref import PROFILE_PREFIX, BatchRef
from ratchet.data.checks import BatchAudit
from ratchet.data.reading import NotExact, iter_batch, iter_typed_batch
from ratchet.data.repository.base import DataRepoError, DataRepository, MergeConflict
from ratchet.data.violations import BatchRejected, Violation

CHUNK_ROWS = 200_000  # rows read, checked and profiled at a time (``data.chunk_rows``)


class IngestRejected(Exception):
    """A batch failed its audit; ``report`` says which column broke which rule."""

    def __init__(self, message: str, report: dict[str, Any]):
        super().__init__(message)
        self.report = report


class TypedSpill:
    """The typed rows of a batch audited in chunks, written as Parquet while the audit reads them:
    what ``stage_batch`` stores, so a batch is read and typed once, not a second time to write it.
    Given up (``path`` None; ``typed_frames`` reads the file again) when a chunk's dtypes differ
    from the first chunk's (an int column with a null in one chunk is float64 over the batch).
    Its folder is removed when the last ``AuditedBatch`` holding it goes, or at exit."""

    def __init__(self) -> None:
        from ratchet.data.repository.parquet import ParquetChunks

        self._folder = Path(tempfile.mkdtemp(prefix="ratchet-ingest-"))
        self._remove = weakref.finalize(self, shutil.rmtree, self._folder, True)
        self._out: ParquetChunks | None = ParquetChunks(self._folder / "typed.parquet")
        self._dtypes: list[str] | None = None
        self._first: pd.DataFrame | None = None  # held until a second chunk comes: one chunk needs no file

    def write(self, typed: pd.DataFrame) -> None:
        if self._out is None:
            return
        dtypes = [str(t) for t in typed.dtypes]
        if self._dtypes is None:
            self._dtypes, self._first = dtypes, typed
            return
        if dtypes != self._dtypes:
            self.discard()
            return
        if self._first is not None:
            self._out.write(self._first)
            self._first = None
        self._out.write(typed)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()

    def discard(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        self._first = None
        if self._remove is not None:  # None in a pickled copy, which owns no file
            self._remove()

    @property
    def path(self) -> Path | None:
        """The Parquet file of every typed row, None when given up."""
        return None if self._out is None else self._out.file

    def __getstate__(self) -> dict:  # a copy (pickled) names no file: it reads the batch again
        return {"_folder": self._folder, "_remove": None, "_out": None, "_dtypes": self._dtypes, "_first": None}


@dataclass(frozen=True, eq=False)  # eq=False: compared (and hashed) by identity; it holds a frame
class AuditedBatch:
    """A batch as its audit found it. Frozen: a later step (drift, the champion's score) returns
    a new value (``dataclasses.replace``) rather than changing this one, so no step depends on
    the order in which others ran on a shared object."""

    batch_id: str
    source: str
    frame: pd.DataFrame | None
    violations: tuple[Violation, ...] = ()
    profile: bytes | None = None
    warnings: tuple[Violation, ...] = ()  # reported, reject nothing (checks.py)
    drift: dict[str, Any] | None = None
    digest: str = ""  # sha256 of the typed rows (of the file's bytes when it could not be read)
    file_digest: str = ""  # sha256 of the file's bytes: what batch ids ended with before content digests
    concept: dict[str, Any] | None = None  # the champion's score on this batch (ratchet.monitoring.concept)
    metadata: Mapping[str, str] = field(default_factory=dict)  # extra commit metadata (the score, as strings)
    rows: int | None = None  # typed rows (None: the file could not be read)
    # a batch over one chunk (``frame`` is None): what ``typed_frames`` needs to read it again
    schema: Schema | None = field(default=None, repr=False)
    chunk_rows: int | None = None
    dtypes: Mapping[str, str] = field(default_factory=dict)  # each column's dtype over the whole batch
    first_chunk: pd.DataFrame | None = field(default=None, repr=False)  # its first typed rows
    typed_read: bool = False  # read by pyarrow's typed reader (``reading.iter_typed_batch``), not the exact one
    spill: TypedSpill | None = field(default=None, repr=False)  # its typed rows, written by the audit

    @property
    def scoring_frame(self) -> pd.DataFrame | None:
        """The typed rows to score the champion on: all of them, or the first chunk's of a batch
        over one chunk (``data.chunk_rows`` rows: plenty for the concept test, in flat memory)."""
        return self.frame if self.frame is not None else self.first_chunk

    @property
    def ok(self) -> bool:
        return not self.violations

    def report(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "source": self.source,
            "rows": self.rows,
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
    warnings = len(result.get("warnings") or [])
    return (f"published {result['rows']} rows; main at {result['commit'][:12]}"
            + (f"; {warnings} warning{'s' * (warnings != 1)} (--json lists them)" if warnings else ""))


def batch_id_for(digest: str) -> str:
    return BatchRef.new(digest).batch_id


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks; "missing" when it is no file."""
    if not path.is_file():
        return "missing"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def audit_batch(path: Path, schema: Schema, chunk_rows: int | None = CHUNK_ROWS, *, exact: bool = False) -> AuditedBatch:
    """Read, type, check and profile a batch; collect every violation.

    The file is read in chunks of ``chunk_rows`` rows (``checks.BatchAudit``): a batch of one
    chunk keeps its typed ``frame``; a larger one keeps only counts, its merged profile and
    8 bytes a row of hashes (``frame`` is None), and writes its typed chunks to a Parquet file
    (``TypedSpill``: what ``stage_batch`` stores), so memory stays flat in the batch's size.
    None: one chunk, however large.

    pyarrow's reader (``reading.iter_typed_batch``) reads it first; where it cannot judge the file
    as the exact reader would (a cell that is no number, a ragged row, ...), the audit starts over
    with the exact reader (``reading.iter_batch``), which names every violation. ``exact``: the
    exact reader only (the typed reader's results are tested against it)."""
    path = Path(path)
    digest_of_file = file_digest(path)
    try:
        try:
            spill = TypedSpill()
            if exact:
                raise NotExact("the exact reader was asked for")
            audit, first, last, chunks = _audit_chunks(path, schema, chunk_rows, spill, typed_read=True)
            typed_read = True
        except NotExact:
            spill.discard()
            spill = TypedSpill()
            audit, first, last, chunks = _audit_chunks(path, schema, chunk_rows, spill, typed_read=False)
            typed_read = False
    except BatchRejected as e:
        spill.discard()
        return AuditedBatch(batch_id_for(digest_of_file), str(path), None, tuple(e.violations),
                            digest=digest_of_file, file_digest=digest_of_file)
    spill.close()
    violations = audit.violations()
    digest = audit.digest()
    errors = tuple(v for v in violations if v.fatal)
    # a batch over one chunk keeps what ``typed_frames`` needs to read it again
    again = dict(schema=schema, chunk_rows=chunk_rows, dtypes=audit.dtypes, first_chunk=first,
                 typed_read=typed_read, spill=spill) if chunks > 1 else {}
    if chunks <= 1 or errors:
        spill.discard()
    return AuditedBatch(
        batch_id_for(digest), str(path), last if chunks == 1 else None, errors, digest=digest,
        file_digest=digest_of_file, warnings=tuple(v for v in violations if not v.fatal), rows=audit.rows,
        profile=None if errors else audit.profile.serialize(),  # whylogs' .bin (profiling.serialize_profile)
        **again,
    )


def _audit_chunks(path: Path, schema: Schema, chunk_rows: int | None, spill: TypedSpill, typed_read: bool
                  ) -> tuple[BatchAudit, pd.DataFrame | None, pd.DataFrame | None, int]:
    """(the audit of every chunk, the first typed chunk, the last, how many chunks); each typed
    chunk is written to ``spill`` too."""
    audit = BatchAudit(schema)
    typed, first, chunks = None, None, 0
    reader = iter_typed_batch if typed_read else iter_batch
    with step(f"checking {path.name}", unit="rows") as progress:
        for raw in reader(path, schema, chunk_rows):
            typed, chunks = audit.add(raw), chunks + 1
            if typed_read and audit.typed_examples:  # a message would quote 1.5 for the file's '1.50'
                raise NotExact("a violation's examples are cells the typed reader parsed")
            first = typed if first is None else first
            spill.write(typed)
            progress.advance(len(raw))
            del raw
    return audit, first, typed, chunks


def typed_frames(audited: AuditedBatch) -> Iterator[pd.DataFrame]:
    """The typed rows of a batch audited in chunks, read again from its file chunk by chunk (by
    the reader its audit used), in the dtypes of the whole batch; ``DataRepoError`` when the file
    no longer holds the rows the audit saw (their digest differs)."""
    if audited.frame is not None:
        yield audited.frame
        return
    audit = BatchAudit(audited.schema, profile=False)
    reader = iter_typed_batch if audited.typed_read else iter_batch
    try:
        with step(f"writing {Path(audited.source).name}", total=audited.rows, unit="rows") as progress:
            for raw in reader(Path(audited.source), audited.schema, audited.chunk_rows):
                progress.advance(len(raw))
                yield audit.add(raw).astype(audited.dtypes)
    except (NotExact, BatchRejected):
        raise DataRepoError(f"batch file {audited.source} changed while it was ingested; ingest it again") from None
    if audit.digest() != audited.digest:
        raise DataRepoError(f"batch file {audited.source} changed while it was ingested; ingest it again")


def reference_profile(repo: DataRepository, ref: str, last: int | None = None) -> Any | None:
    """Merged whylogs profile of the batches at ``ref`` (the last ``last`` ones)."""
    paths = [p for p in repo.list_objects(ref, PROFILE_PREFIX) if p.endswith(".bin")]
    if last:
        paths = paths[-last:]
    if not paths:
        return None
    from ratchet.data.profiling import deserialize_profile, merge_profiles  # whylogs: a second of imports

    return merge_profiles([deserialize_profile(repo.get_object(ref, p)) for p in paths])


def find_duplicate(repo: DataRepository, audited: AuditedBatch, cfg: DataConfig) -> Duplicate | None:
    """The batch on main with this batch's digest, if any; only a batch that passed its checks
    can be a duplicate (a rejected one is reported as rejected). Batch ids written before
    content digests end with the file's digest, so that one is looked for too."""
    if not audited.ok:
        return None
    held = [p for p in repo.list_objects(cfg.main_branch, cfg.batch_prefix) if p.endswith(".parquet")
            and any(BatchRef.from_path(p).named_by(d) for d in (audited.digest, audited.file_digest))]
    if not held:
        return None
    batch_id = BatchRef.from_path(held[0]).batch_id
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
) -> AuditedBatch:
    """``audited`` with its drift from main's profile (and, with ``data.drift_gate``, a violation
    when it drifts); unchanged when there is nothing to compare."""
    ref = reference_profile(repo, cfg.main_branch)
    if ref is None or audited.profile is None:
        return audited
    from ratchet.data.profile_drift import drift_report
    from ratchet.data.profiling import deserialize_profile

    # datetimes are left out: their calendar parts differ between time-ordered batches by construction
    report = drift_report(ref, deserialize_profile(audited.profile), drift, columns=schema.drift_feature_names)
    violations = audited.violations
    if cfg.drift_gate and report.detected:
        drifted = [k for k, v in report.features.items() if v["drifted"]]
        violations += (
            Violation(None, "drift", f"batch drifts from main on {len(drifted)} feature(s): {', '.join(drifted)}"),
        )
    return replace(audited, drift=report.to_dict(), violations=violations)


def stage_batch(repo: DataRepository, audited: AuditedBatch, path: Path, cfg: DataConfig) -> str:
    """Create the ingest branch and write the batch, its profile and report to it."""
    ref = BatchRef(audited.batch_id)
    branch = ref.branch
    repo.create_branch(branch, cfg.main_branch)
    if audited.ok:
        key = ref.data_key(cfg.batch_prefix)
        if audited.frame is not None:
            repo.write_dataframe(branch, key, audited.frame)
        elif audited.spill is not None and audited.spill.path is not None:
            repo.put_file(branch, key, audited.spill.path)  # the typed rows the audit wrote
        else:
            repo.write_frames(branch, key, typed_frames(audited))
        repo.put_object(branch, ref.profile_key, audited.profile)
        repo.put_object(branch, ref.digest_key(audited.digest), audited.batch_id.encode())
    elif Path(path).is_file():
        # keep the raw bytes of a rejected batch on its branch for inspection
        repo.put_file(branch, ref.rejected_key(Path(path).suffix), Path(path))
    repo.put_object(branch, ref.report_key, json.dumps(audited.report(), indent=2, default=str).encode())
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
            "ratchet.rows": str(audited.rows or 0),
            "ratchet.violations": json.dumps([v.to_dict() for v in audited.violations])[:4000],
            **audited.metadata,
        },
    )


def publish_batch(repo: DataRepository, branch: str, audited: AuditedBatch, cfg: DataConfig) -> str | Duplicate:
    """Merge a passed batch into main and drop its branch; return main's new commit, or the
    ``Duplicate`` an ingest of the same rows published since this one's duplicate check (its
    digest object conflicts: ``batch_ref.DIGEST_PREFIX``)."""
    marker = BatchRef(audited.batch_id).digest_key(audited.digest)
    try:
        commit: str | Duplicate = repo.merge(
            branch, cfg.main_branch, message=f"publish {audited.batch_id}",
            metadata={"ratchet.batch_id": audited.batch_id, "ratchet.digest": audited.digest}, strategy="fail",
        )
    except MergeConflict as e:
        if marker not in e.paths:
            raise
        winner = repo.get_object(cfg.main_branch, marker).decode()
        commit = Duplicate(winner, f"{cfg.batch_prefix}{winner}.parquet", publishing_commit(repo, cfg.main_branch, winner))
    repo.delete_branch(branch)
    return commit


def rejection_message(audited: AuditedBatch) -> str:
    lines = [f"batch {audited.source} rejected ({len(audited.violations)} violation(s)):"]
    lines += [f"  - [{v.rule}] {v.column or '(batch)'}: {v.message}" for v in audited.violations]
    return "\n".join(lines)
