"""The lakeFS backend: the same repository interface over a lakeFS server.

Built on the official high-level ``lakefs`` SDK; a few calls whose answers the
high-level classes discard (branch and tag listings with their commit ids, the
merge base, tag creation's commit id) go through the generated ``lakefs_sdk``
client the same SDK wraps. Configured by ``LAKEFS_ENDPOINT``,
``LAKEFS_ACCESS_KEY_ID`` and ``LAKEFS_SECRET_ACCESS_KEY``; a missing
repository is created when ``LAKEFS_STORAGE_NAMESPACE`` names where its data
goes.

Semantics match the embedded backend:

* lakeFS branch ids are ``^\\w[-\\w]*$`` and tag ids allow no '/' either:
  unlike the embedded backend, no '/' in branch or tag names (refused here with
  ``InvalidName`` before any request).
* ``merge`` of a source that is already an ancestor of the destination is a
  no-op returning the destination head (lakeFS would answer "no changes");
  otherwise it always creates a merge commit (``allow_empty``), even when the
  merged content equals the destination's.
* ``diff`` is the two-dot diff of committed content (lakeFS defaults to three-dot).
* On a conflict lakeFS does not list the paths; they are recomputed from the
  merge base (paths changed on both sides to different content).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import lakefs
import lakefs_sdk
import urllib3.exceptions
from lakefs.exceptions import (
    BadRequestException,
    ConflictException,
    LakeFSException,
    NotFoundException,
    ServerException,
    api_exception_handler,
)
from lakefs.reference import generate_listing

from ratchet.data.repository.base import (
    BranchExists,
    Change,
    Commit,
    DataRepoError,
    DataRepository,
    MergeConflict,
    MergeStrategy,
    NothingToCommit,
    ObjectNotFound,
    RefNotFound,
)
from ratchet.data.repository.semantics import (
    InvalidName,
    check_strategy,
    normalize_metadata,
    validate_branch_name,
    validate_path,
    validate_tag_name,
)

ENV_ENDPOINT = "LAKEFS_ENDPOINT"
ENV_KEY = "LAKEFS_ACCESS_KEY_ID"
ENV_SECRET = "LAKEFS_SECRET_ACCESS_KEY"
ENV_NAMESPACE = "LAKEFS_STORAGE_NAMESPACE"
_PAGE = 1000  # lakeFS's maximum page size: fewest round trips


def _message(e: LakeFSException) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(getattr(e, "reason", None) or e)


@contextlib.contextmanager
def _mapped(
    what: str,
    not_found: type[DataRepoError] = RefNotFound,
    conflict: type[DataRepoError] = DataRepoError,
) -> Iterator[None]:
    """Turn SDK errors (high-level or raw) into this package's exceptions."""
    try:
        with api_exception_handler():
            yield
    except NotFoundException as e:
        raise not_found(f"{what}: {_message(e)}") from e
    except ConflictException as e:
        raise conflict(f"{what}: {_message(e)}") from e
    except BadRequestException as e:
        msg = _message(e)
        if "no changes" in msg:
            raise NothingToCommit(f"{what}: {msg}") from e
        raise DataRepoError(f"{what}: {msg}") from e
    except ServerException as e:
        raise DataRepoError(f"{what}: lakeFS answered {e.status_code}: {_message(e)}") from e
    except LakeFSException as e:
        raise DataRepoError(f"{what}: {e}") from e
    except urllib3.exceptions.HTTPError as e:
        raise DataRepoError(f"{what}: cannot reach lakeFS: {e}") from e


class _Conflict(DataRepoError):
    """lakeFS answered 409 to a merge; the paths are computed afterwards."""


def _lakefs_branch_name(name: str) -> str:
    validate_branch_name(name)
    if "/" in name:
        raise InvalidName(f"invalid branch name {name!r}: lakeFS branch names cannot contain '/'")
    return name


def _lakefs_tag_name(name: str) -> str:
    validate_tag_name(name)
    if "/" in name:
        raise InvalidName(f"invalid tag name {name!r}: lakeFS tag names cannot contain '/'")
    return name


class LakeFSRepository(DataRepository):
    """One lakeFS repository seen through the ``DataRepository`` interface."""

    def __init__(self, repository: str, client: lakefs.Client, main_branch: str = "main"):
        self.repository_id = repository
        self.main_branch = main_branch
        self._client = client
        self._repo = lakefs.Repository(repository, client=client)

    @property
    def _sdk(self) -> lakefs_sdk.client.LakeFSClient:
        return self._client.sdk_client

    # ------------------------------------------------------------- lifecycle
    @classmethod
    def from_env(cls, repository: str, main_branch: str = "main") -> LakeFSRepository:
        """Connect with ``LAKEFS_*`` variables; create the repository if it is missing."""
        missing = [v for v in (ENV_ENDPOINT, ENV_KEY, ENV_SECRET) if not os.environ.get(v)]
        if missing:
            raise DataRepoError(f"the lakeFS backend needs environment variable(s) {', '.join(missing)}")
        client = lakefs.Client(
            host=os.environ[ENV_ENDPOINT],
            username=os.environ[ENV_KEY],
            password=os.environ[ENV_SECRET],
        )
        repo = cls(repository, client, main_branch=main_branch)
        repo.ensure_exists(os.environ.get(ENV_NAMESPACE))
        return repo

    def ensure_exists(self, storage_namespace: str | None) -> None:
        """Create the repository (default branch ``main_branch``) if missing, and the main branch."""
        try:
            with _mapped(f"repository {self.repository_id!r}"):
                self._sdk.repositories_api.get_repository(self.repository_id)
        except RefNotFound:
            if not storage_namespace:
                raise DataRepoError(
                    f"lakeFS repository {self.repository_id!r} does not exist; set {ENV_NAMESPACE} "
                    "(e.g. s3://bucket/ratchet) to let ratchet create it"
                ) from None
            with _mapped(f"create repository {self.repository_id!r}"):
                self._repo.create(
                    storage_namespace=storage_namespace, default_branch=self.main_branch, exist_ok=True
                )
        if not self.branch_exists(self.main_branch):
            default = self._sdk.repositories_api.get_repository(self.repository_id).default_branch
            self.create_branch(self.main_branch, default)

    # -------------------------------------------------------------------- refs
    def create_branch(self, name: str, source_ref: str) -> str:
        _lakefs_branch_name(name)
        with _mapped(f"create branch {name!r} from {source_ref!r}", conflict=BranchExists):
            self._repo.branch(name).create(source_ref)
        return self.resolve(name)

    def delete_branch(self, name: str) -> None:
        if name == self.main_branch:
            raise DataRepoError(f"refusing to delete the main branch {name!r}")
        with _mapped(f"delete branch {name!r}"):
            self._repo.branch(name).delete()

    def list_branches(self) -> dict[str, str]:
        with _mapped("list branches"):
            refs = generate_listing(self._sdk.branches_api.list_branches, self.repository_id, amount=_PAGE)
            return {r.id: r.commit_id for r in refs}

    def branch_exists(self, name: str) -> bool:
        try:
            with _mapped(f"branch {name!r}"):
                self._sdk.branches_api.get_branch(self.repository_id, name)
            return True
        except RefNotFound:
            return False

    def create_tag(self, name: str, ref: str) -> str:
        _lakefs_tag_name(name)
        with _mapped(f"create tag {name!r} at {ref!r}"):
            created = self._sdk.tags_api.create_tag(
                self.repository_id, lakefs_sdk.TagCreation(id=name, ref=ref)
            )
        return created.commit_id

    def list_tags(self) -> dict[str, str]:
        with _mapped("list tags"):
            refs = generate_listing(self._sdk.tags_api.list_tags, self.repository_id, amount=_PAGE)
            return {r.id: r.commit_id for r in refs}

    def resolve(self, ref: str) -> str:
        if not isinstance(ref, str) or not ref or any(c.isspace() for c in ref):
            raise RefNotFound(f"invalid ref {ref!r}")
        try:
            with _mapped(f"resolve {ref!r}"):
                return self._repo.ref(ref).get_commit().id
        except RefNotFound:
            raise
        except DataRepoError as e:  # lakeFS answers 400 for refs it cannot parse
            raise RefNotFound(str(e)) from e

    # ----------------------------------------------------------------- objects
    def put_object(self, branch: str, path: str, data: bytes) -> None:
        validate_path(path)
        with _mapped(f"put {path!r} on branch {branch!r}"):
            self._repo.branch(branch).object(path).upload(bytes(data), mode="wb", pre_sign=False)

    def delete_object(self, branch: str, path: str) -> None:
        validate_path(path)
        try:
            with _mapped(f"delete {path!r} on branch {branch!r}", not_found=ObjectNotFound):
                self._repo.branch(branch).object(path).delete()
        except ObjectNotFound:
            if not self.branch_exists(branch):
                raise RefNotFound(f"no branch {branch!r}") from None
            raise

    def get_object(self, ref: str, path: str) -> bytes:
        validate_path(path)
        try:
            with _mapped(f"get {path!r} at {ref!r}", not_found=ObjectNotFound):
                with self._repo.ref(ref).object(path).reader(mode="rb", pre_sign=False) as fh:
                    return bytes(fh.read())
        except ObjectNotFound:
            self.resolve(ref)  # RefNotFound when the ref is the missing piece
            raise

    def list_objects(self, ref: str, prefix: str = "") -> list[str]:
        with _mapped(f"list objects at {ref!r}"):
            return sorted(o.path for o in self._repo.ref(ref).objects(prefix=prefix or None, amount=_PAGE))

    def has_uncommitted_changes(self, branch: str) -> bool:
        with _mapped(f"uncommitted changes on {branch!r}"):
            return next(iter(self._repo.branch(branch).uncommitted(max_amount=1)), None) is not None

    # ----------------------------------------------------------------- history
    def commit(self, branch: str, message: str, metadata: dict[str, str] | None = None) -> str:
        meta = normalize_metadata(metadata)
        with _mapped(f"commit on branch {branch!r}"):
            return self._repo.branch(branch).commit(str(message), metadata=meta or None).id

    @staticmethod
    def _to_commit(c: lakefs.Commit) -> Commit:
        return Commit(
            id=c.id,
            parents=tuple(c.parents),
            message=c.message,
            metadata=dict(c.metadata or {}),
            created_at=float(c.creation_date),
        )

    def get_commit(self, commit_id: str) -> Commit:
        with _mapped(f"commit {commit_id!r}"):
            return self._to_commit(self._repo.ref(commit_id).get_commit())

    def log(self, ref: str, limit: int | None = None) -> list[Commit]:
        with _mapped(f"log of {ref!r}"):
            amount = min(limit, _PAGE) if limit else _PAGE
            return [self._to_commit(c) for c in self._repo.ref(ref).log(max_amount=limit, amount=amount)]

    def diff(self, left_ref: str, right_ref: str) -> list[Change]:
        out: list[Change] = []
        with _mapped(f"diff {left_ref!r}..{right_ref!r}"):
            for c in self._repo.ref(left_ref).diff(right_ref, type="two_dot", amount=_PAGE):
                if c.path_type != "object":
                    continue
                kind = c.type if c.type in ("added", "removed") else "changed"
                out.append(Change(path=c.path, type=kind))
        return sorted(out, key=lambda c: c.path)

    def merge_base(self, source_ref: str, dest_branch: str) -> str:
        with _mapped(f"merge base of {source_ref!r} and {dest_branch!r}"):
            return self._sdk.refs_api.find_merge_base(
                self.repository_id, source_ref, dest_branch
            ).base_commit_id

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
        if self.has_uncommitted_changes(dest_branch):
            raise DataRepoError(
                f"cannot merge into {dest_branch!r}: it has uncommitted changes; commit or discard them first"
            )
        source = self.resolve(source_ref)
        if self.merge_base(source, dest_branch) == source:
            return self.resolve(dest_branch)  # source already merged: nothing to do
        kwargs: dict = {
            "message": message or f"Merge '{source_ref}' into '{dest_branch}'",
            "metadata": meta or None,
            "allow_empty": True,
        }
        if strategy != "fail":
            kwargs["strategy"] = strategy
        try:
            with _mapped(f"merge {source_ref!r} into {dest_branch!r}", conflict=_Conflict):
                return self._repo.ref(source).merge_into(dest_branch, **kwargs)
        except _Conflict:
            raise MergeConflict(self._conflicts(source, dest_branch)) from None

    def _conflicts(self, source: str, dest_branch: str) -> list[str]:
        """Paths changed on both sides since the merge base, to different content."""
        base = self.merge_base(source, dest_branch)
        both = {c.path for c in self.diff(base, source)} & {c.path for c in self.diff(base, dest_branch)}
        out = [p for p in both if self._checksum(source, p) != self._checksum(dest_branch, p)]
        return out or sorted(both) or ["<unknown: lakeFS reported a conflict>"]

    def _checksum(self, ref: str, path: str) -> str | None:
        try:
            with _mapped(f"stat {path!r} at {ref!r}", not_found=ObjectNotFound):
                return self._repo.ref(ref).object(path).stat(pre_sign=False).checksum
        except ObjectNotFound:
            return None
