"""A small HTTP stand-in for the lakeFS API, for tests only.

It serves, under ``/api/v1``, exactly the endpoints the lakeFS backend calls.
Every request and every answer is checked against lakeFS's own OpenAPI document,
vendored in ``tests/data/lakefs/`` (``lakefs_contract``): a request off the
contract gets the 400 lakeFS's request validator gives, an answer off it a 500,
and both are kept in ``violations`` for the tests to fail on.

Repository semantics come from ``EmbeddedRepository``, so they are defined in one
place; the rules of the lakeFS server that matter to ratchet and that the embedded
backend is looser about are enforced here as lakeFS enforces them (the Go source of
the same release: ``pkg/validator``, ``pkg/graveler/validate.go``, ``pkg/api``):

* a storage namespace serves one repository: a second ``POST /repositories`` on it is
  400 "failed to create repository: ... storage namespace already in use";
* repository ids ``^[a-z0-9][a-z0-9-]{2,62}$``, branch ids ``^\\w[-\\w]*$``, tag ids by
  ``ValidateTagID`` (no '/', '..', '@{', control characters ...): 400 "... invalid value";
* errors carry lakeFS's body ``{"message": ...}`` and its status mapping (404 not found,
  409 not unique, a merge conflict's 409 with an empty ``MergeResult``, 400 invalid value / "no changes" /
  "uncommitted changes (dirty branch)" / "cannot delete repository default branch",
  401 bad credentials);
* listings paginate as lakeFS does (``after`` exclusive, ``amount`` up to 1000,
  ``pagination.has_more`` / ``next_offset``).

Not covered (the backend never calls them): presigned uploads, multipart form
uploads, imports, auth management, hooks, ref expressions like ``main~1``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ratchet.data.repository.base import (
    BranchExists,
    DataRepoError,
    MergeConflict,
    NothingToCommit,
    ObjectNotFound,
    RefNotFound,
)
from ratchet.data.repository.embedded import EmbeddedRepository
from ratchet.data.repository.lakefs import LakeFSRepository
from ratchet.data.repository.semantics import InvalidName
from tests.data.lakefs_contract import ContractRequest, ContractResponse, request_errors, response_errors

_BRANCH_ID = re.compile(r"^\w[-\w]*$")
_REPO_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
_NAMESPACE = re.compile(r"^(s3|gs|https?|mem|local|transient)://.*$")
_DEFAULT_PER_PAGE = 100
_MAX_PER_PAGE = 1000


def _valid_tag_id(tag: str) -> bool:
    """lakeFS's ``graveler.ValidateTagID`` (git-check-ref-format, less '~'): stricter than the
    embedded backend's tags, which may hold '/'."""
    return (
        bool(tag)
        and tag != "@"
        and not tag.endswith((".", ".lock"))
        and not any(s in tag for s in ("..", "/", "@{"))
        and not any(c in tag for c in "^:?*[\\")
        and all(ord(c) > 0x20 and ord(c) != 0x7F for c in tag)
    )


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _paginate(items: list[Any], key: Callable[[Any], str], q: dict[str, str]) -> tuple[list[Any], dict]:
    """lakeFS pagination: ``after`` is exclusive, ``amount`` defaults to 100, max 1000."""
    after = q.get("after") or ""
    amount = int(q.get("amount") or _DEFAULT_PER_PAGE)
    if amount <= 0 or amount > _MAX_PER_PAGE:
        amount = _MAX_PER_PAGE
    if after:
        items = [i for i in items if key(i) > after]
    page, more = items[:amount], len(items) > amount
    pagination = {
        "has_more": more,
        "next_offset": key(page[-1]) if more and page else "",
        "results": len(page),
        "max_per_page": _MAX_PER_PAGE,
    }
    return page, pagination


class LakeFSStandin:
    """Holds repositories (one ``EmbeddedRepository`` each) and serves them over HTTP."""

    def __init__(
        self, root: Path, access_key_id: str = "AKIASTANDIN", secret_access_key: str = "standin-secret"
    ):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self._repos: dict[str, tuple[EmbeddedRepository, dict[str, Any]]] = {}
        self._namespaces: set[str] = set()  # lakeFS leaves its marker in a namespace: used once
        self.violations: list[str] = []  # requests and answers off lakeFS's OpenAPI document
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    @property
    def endpoint(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LakeFSStandin:
        standin = self

        class Handler(_Handler):
            app = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="lakefs-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def take_violations(self) -> list[str]:
        """Contract violations seen since the last call (and forget them)."""
        with self._lock:
            out, self.violations = self.violations, []
        return out

    def _violation(self, what: str) -> None:
        with self._lock:
            self.violations.append(what)

    # --------------------------------------------------------------- helpers
    def repo(self, name: str) -> tuple[EmbeddedRepository, dict[str, Any]]:
        with self._lock:
            if name not in self._repos:
                raise ApiError(404, "repository not found")
            return self._repos[name]

    @staticmethod
    def _commit_json(repo: EmbeddedRepository, commit_id: str) -> dict[str, Any]:
        c = repo.get_commit(commit_id)
        return {
            "id": c.id,
            "parents": list(c.parents),
            "committer": "standin",
            "message": c.message,
            "creation_date": int(c.created_at),
            "meta_range_id": repo.commit_tree(c.id),
            "metadata": dict(c.metadata),
        }

    @staticmethod
    def _object_stats(repo: EmbeddedRepository, ref: str, path: str, data: bytes | None = None) -> dict:
        data = repo.get_object(ref, path) if data is None else data
        digest = hashlib.sha256(data).hexdigest()
        return {
            "path": path,
            "path_type": "object",
            "physical_address": f"local://objects/{digest}",
            "checksum": digest,
            "size_bytes": len(data),
            "mtime": int(time.time()),
            "content_type": "application/octet-stream",
            "metadata": {},
        }

    @staticmethod
    def _branch_head(repo: EmbeddedRepository, branch: str) -> str:
        if not repo.branch_exists(branch):
            raise ApiError(404, "branch not found")
        return repo.resolve(branch)

    # ---------------------------------------------------------------- routes
    def dispatch(self, method: str, parts: list[str], q: dict[str, str], headers: Any, body: bytes):
        """Return (status, payload, content_type); payload is JSON-able, bytes or str."""
        if parts[:2] != ["api", "v1"]:
            raise ApiError(404, "not found")
        p = parts[2:]
        if p == ["repositories"] and method == "POST":
            return self.create_repository(json.loads(body or b"{}"))
        if len(p) < 2 or p[0] != "repositories":
            raise ApiError(404, "not found")
        name, rest = p[1], p[2:]
        if not rest and method == "GET":
            _, meta = self.repo(name)
            return 200, meta, None
        repo, meta = self.repo(name)
        route = (method, rest)
        j = json.loads(body) if body and "json" in (headers.get("Content-Type") or "") else None

        match route:
            case ("GET", ["branches"]):
                refs = [{"id": b, "commit_id": c} for b, c in repo.list_branches().items()]
                if q.get("prefix"):
                    refs = [r for r in refs if r["id"].startswith(q["prefix"])]
                page, pag = _paginate(refs, lambda r: r["id"], q)
                return 200, {"pagination": pag, "results": page}, None
            case ("POST", ["branches"]):
                bname, source = j["name"], j["source"]
                if not _BRANCH_ID.match(bname):
                    raise ApiError(400, "branch id: invalid value: validation error")
                if repo.branch_exists(bname):
                    raise ApiError(409, "branch already exists: not unique")
                commit_id = repo.create_branch(bname, source)
                return 201, commit_id, "text/html"
            case ("GET", ["branches", branch]):
                return 200, {"id": branch, "commit_id": self._branch_head(repo, branch)}, None
            case ("DELETE", ["branches", branch]):
                if branch == meta["default_branch"]:
                    raise ApiError(400, "cannot delete repository default branch")
                repo.delete_branch(branch)
                return 204, None, None
            case ("GET", ["branches", branch, "diff"]):
                self._branch_head(repo, branch)
                diffs = [
                    {"type": c.type, "path": c.path, "path_type": "object"} for c in repo.uncommitted(branch)
                ]
                page, pag = _paginate(diffs, lambda d: d["path"], q)
                return 200, {"pagination": pag, "results": page}, None
            case ("POST", ["branches", branch, "commits"]):
                self._branch_head(repo, branch)
                commit_id = repo.commit(branch, j["message"], j.get("metadata") or {})
                return 201, self._commit_json(repo, commit_id), None
            case ("POST", ["branches", branch, "objects"]):
                self._branch_head(repo, branch)
                path = q.get("path") or ""
                if not path:
                    raise ApiError(400, "path is required")
                if (headers.get("Content-Type") or "").startswith("multipart/"):
                    raise ApiError(501, "multipart upload is not supported by the stand-in")
                repo.put_object(branch, path, body)
                return 201, self._object_stats(repo, branch, path, body), None
            case ("DELETE", ["branches", branch, "objects"]):
                self._branch_head(repo, branch)
                repo.delete_object(branch, q.get("path") or "")
                return 204, None, None
            case ("GET", ["commits", commit_id]):
                return 200, self._commit_json(repo, repo.resolve(commit_id)), None
            case ("GET", ["refs", ref, "commits"]):
                commits = [self._commit_json(repo, c.id) for c in repo.log(ref)]
                after = q.get("after")
                if after:  # log order is not sorted by id: ``after`` is the last id seen
                    ids = [c["id"] for c in commits]
                    commits = commits[ids.index(after) + 1 :] if after in ids else []
                amount = int(q.get("amount") or _DEFAULT_PER_PAGE)
                amount = amount if 0 < amount <= _MAX_PER_PAGE else _MAX_PER_PAGE
                page, more = commits[:amount], len(commits) > amount
                pag = {
                    "has_more": more,
                    "next_offset": page[-1]["id"] if more else "",
                    "results": len(page),
                    "max_per_page": _MAX_PER_PAGE,
                }
                return 200, {"pagination": pag, "results": page}, None
            case ("GET", ["refs", left, "diff", right]):
                if q.get("type", "three_dot") == "three_dot":
                    base = repo.merge_base(left, right)
                    left = base if base is not None else left
                changes = [
                    {"type": c.type, "path": c.path, "path_type": "object"} for c in repo.diff(left, right)
                ]
                if q.get("prefix"):
                    changes = [c for c in changes if c["path"].startswith(q["prefix"])]
                page, pag = _paginate(changes, lambda c: c["path"], q)
                return 200, {"pagination": pag, "results": page}, None
            case ("GET", ["refs", source_ref, "merge", dest_branch]):
                source, dest = repo.resolve(source_ref), self._branch_head(repo, dest_branch)
                base = repo.merge_base(source, dest)
                if base is None:
                    raise ApiError(404, "no merge base found")
                return (
                    200,
                    {"source_commit_id": source, "destination_commit_id": dest, "base_commit_id": base},
                    None,
                )
            case ("POST", ["refs", source_ref, "merge", dest_branch]):
                return self.merge(repo, source_ref, dest_branch, j or {})
            case ("GET", ["refs", ref, "objects"]):
                path = q.get("path") or ""
                data = repo.get_object(ref, path)
                rng = headers.get("Range")
                if rng:
                    m = re.match(r"bytes=(\d+)-(\d*)$", rng)
                    if not m:
                        raise ApiError(400, "invalid range")
                    start = int(m.group(1))
                    if start >= len(data):
                        raise ApiError(416, "Requested Range Not Satisfiable")
                    end = int(m.group(2)) if m.group(2) else len(data) - 1
                    return 206, data[start : end + 1], "application/octet-stream"
                return 200, data, "application/octet-stream"
            case ("GET", ["refs", ref, "objects", "stat"]):
                return 200, self._object_stats(repo, ref, q.get("path") or ""), None
            case ("GET", ["refs", ref, "objects", "ls"]):
                prefix, delim = q.get("prefix") or "", q.get("delimiter") or ""
                entries: list[dict] = []
                seen_prefixes: set[str] = set()
                for path in repo.list_objects(ref, prefix):
                    cut = path.find(delim, len(prefix)) if delim else -1
                    if cut >= 0:
                        common = path[: cut + len(delim)]
                        if common not in seen_prefixes:
                            seen_prefixes.add(common)
                            entries.append(
                                {
                                    "path": common,
                                    "path_type": "common_prefix",
                                    "physical_address": "",
                                    "checksum": "",
                                    "mtime": 0,
                                }
                            )
                    else:
                        entries.append(self._object_stats(repo, ref, path))
                page, pag = _paginate(entries, lambda e: e["path"], q)
                return 200, {"pagination": pag, "results": page}, None
            case ("GET", ["tags"]):
                refs = [{"id": t, "commit_id": c} for t, c in repo.list_tags().items()]
                page, pag = _paginate(refs, lambda r: r["id"], q)
                return 200, {"pagination": pag, "results": page}, None
            case ("POST", ["tags"]):
                tag, ref = j["id"], j["ref"]
                if not _valid_tag_id(tag):
                    raise ApiError(400, "tag id: invalid value: validation error")
                if tag in repo.list_tags():
                    raise ApiError(409, "tag already exists: not unique")
                return 201, {"id": tag, "commit_id": repo.create_tag(tag, ref)}, None
            case ("GET", ["tags", tag]):
                tags = repo.list_tags()
                if tag not in tags:
                    raise ApiError(404, "tag not found")
                return 200, {"id": tag, "commit_id": tags[tag]}, None
        raise ApiError(404, f"no such endpoint: {method} /{'/'.join(parts)}")

    def create_repository(self, j: dict[str, Any]):
        name = j.get("name", "")
        if not _REPO_ID.match(name):
            raise ApiError(400, f"repository id: invalid value: {name}")
        namespace = str(j.get("storage_namespace") or "")
        if not _NAMESPACE.match(namespace):
            raise ApiError(400, "storage_namespace: invalid value")
        default_branch = j.get("default_branch") or "main"
        if not _BRANCH_ID.match(default_branch):
            raise ApiError(400, f"default branch: invalid value: {default_branch}")
        with self._lock:
            if name in self._repos:
                raise ApiError(409, "repository already exists: not unique")
            if namespace.rstrip("/") in self._namespaces:
                raise ApiError(400, f"failed to create repository: found lakeFS objects in the storage "
                                    f"(:{namespace}) key(_lakefs/dummy): storage namespace already in use")
            self._namespaces.add(namespace.rstrip("/"))
            repo = EmbeddedRepository.open_or_init(self.root / name, main_branch=default_branch)
            meta = {
                "id": name,
                "creation_date": int(time.time()),
                "default_branch": default_branch,
                "storage_namespace": j["storage_namespace"],
                "storage_id": "",
                "read_only": False,
            }
            self._repos[name] = (repo, meta)
        return 201, meta, None

    def merge(self, repo: EmbeddedRepository, source_ref: str, dest: str, j: dict[str, Any]):
        strategy = j.get("strategy") or "fail"
        if strategy not in ("fail", "source-wins", "dest-wins"):
            raise ApiError(400, "invalid merge strategy")
        dest_head = self._branch_head(repo, dest)
        source = repo.resolve(source_ref)
        if repo.uncommitted(dest):
            raise ApiError(400, "uncommitted changes (dirty branch)")
        if repo.merge_base(source, dest_head) == source and not j.get("allow_empty"):
            raise ApiError(400, "no changes")
        try:
            ref = repo.merge(
                source_ref,
                dest,
                message=j.get("message") or None,
                metadata=j.get("metadata") or None,
                strategy=strategy,  # type: ignore[arg-type]
            )
        except MergeConflict:
            # lakeFS's MergeIntoBranch answers a conflict with 409 and an empty MergeResult,
            # not an Error body (the document says so; the backend finds the paths itself)
            return 409, {"reference": ""}, None
        return 200, {"reference": ref}, None


class _Handler(BaseHTTPRequestHandler):
    app: LakeFSStandin
    protocol_version = "HTTP/1.1"
    # One buffered write per response and no Nagle: otherwise every keep-alive
    # request stalls ~40 ms on delayed ACKs.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet in tests
        pass

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Basic "):
            return False
        try:
            key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return False
        return key == self.app.access_key_id and secret == self.app.secret_access_key

    def _read_body(self) -> bytes:
        # urllib3 streams file bodies (the SDK's raw upload) with chunked encoding
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self, method: str) -> None:
        body = self._read_body()
        url = urlsplit(self.path)
        # split before unquoting: path parameters are quoted with safe='' by the SDK
        parts = [unquote(s) for s in url.path.strip("/").split("/")]
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        host, port = self.server.server_address[:2]
        contract = ContractRequest.of(f"http://{host}:{port}", method, self.path, self.headers, body)
        try:
            off = request_errors(contract)
            if off:  # lakeFS validates requests against the same document and answers 400
                self.app._violation(f"request {method} {self.path}: {'; '.join(off)}")
                raise ApiError(400, f"request does not match lakeFS's API: {off[0]}")
            if not self._authorized():
                raise ApiError(401, "error authenticating request")
            status, payload, ctype = self.app.dispatch(method, parts, q, self.headers, body)
        except ApiError as e:
            status, payload, ctype = e.status, {"message": e.message}, None
        except RefNotFound:
            status, payload, ctype = 404, {"message": "not found"}, None
        except ObjectNotFound:
            status, payload, ctype = 404, {"message": "object not found"}, None
        except BranchExists:
            status, payload, ctype = 409, {"message": "branch already exists: not unique"}, None
        except NothingToCommit:
            status, payload, ctype = 400, {"message": "commit: no changes"}, None
        except (InvalidName, DataRepoError, KeyError, ValueError) as e:
            status, payload, ctype = 400, {"message": f"invalid value: {e}"}, None
        except Exception as e:  # never kill the server thread
            status, payload, ctype = 500, {"message": f"internal error: {e!r}"}, None
        data, ctype = self._encode(payload, ctype)
        off = response_errors(contract, ContractResponse(status, data, ctype or ""))
        if off:
            self.app._violation(f"answer {status} to {method} {self.path}: {'; '.join(off)}")
            status, payload = 500, {"message": f"the stand-in's answer is off lakeFS's API: {off[0]}"}
            data, ctype = self._encode(payload, None)
        self._send(status, data, ctype)

    @staticmethod
    def _encode(payload: Any, ctype: str | None) -> tuple[bytes, str | None]:
        if payload is None:
            return b"", ctype
        if isinstance(payload, bytes | bytearray):
            return bytes(payload), ctype
        if isinstance(payload, str) and ctype:
            return payload.encode(), ctype
        return json.dumps(payload).encode(), "application/json"

    def _send(self, status: int, data: bytes, ctype: str | None) -> None:
        self.send_response(status)
        if data or ctype:
            self.send_header("Content-Type", ctype or "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


def standin_repository(standin: LakeFSStandin, main_branch: str = "main") -> LakeFSRepository:
    """A fresh lakeFS-backend repository on the stand-in, on a storage namespace of its own
    (lakeFS refuses a second repository on a namespace already used)."""
    import lakefs

    client = lakefs.Client(
        host=standin.endpoint, username=standin.access_key_id, password=standin.secret_access_key
    )
    name = f"t-{uuid.uuid4().hex[:12]}"
    repo = LakeFSRepository(name, client, main_branch=main_branch)
    repo.ensure_exists(f"local://standin/{name}")
    return repo
