"""lakeFS-specific behaviour: configuration from the environment, errors, pagination, and
the stand-in held to lakeFS's published API (the vendored OpenAPI document)."""

from __future__ import annotations

import base64
import json
import re
import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import lakefs
import lakefs_sdk
import pytest
import yaml
from lakefs.reference import generate_listing

from ratchet.data.repository.base import DataRepoError
from ratchet.data.repository.lakefs import LakeFSRepository
from ratchet.data.repository.semantics import InvalidName
from tests.data.lakefs_contract import SWAGGER, ContractRequest, ContractResponse, response_errors
from tests.data.lakefs_standin import LakeFSStandin, standin_repository


@pytest.fixture
def standin_env(lakefs_standin: LakeFSStandin, monkeypatch: pytest.MonkeyPatch) -> LakeFSStandin:
    monkeypatch.setenv("LAKEFS_ENDPOINT", lakefs_standin.endpoint)
    monkeypatch.setenv("LAKEFS_ACCESS_KEY_ID", lakefs_standin.access_key_id)
    monkeypatch.setenv("LAKEFS_SECRET_ACCESS_KEY", lakefs_standin.secret_access_key)
    # one namespace per test: lakeFS serves one repository per storage namespace
    monkeypatch.setenv("LAKEFS_STORAGE_NAMESPACE", f"local://standin/env-{uuid.uuid4().hex[:8]}")
    return lakefs_standin


def test_from_env_creates_then_opens(standin_env: LakeFSStandin) -> None:
    name = f"env-{uuid.uuid4().hex[:8]}"
    repo = LakeFSRepository.from_env(name, main_branch="main")
    head = repo.resolve("main")
    repo.put_object("main", "x", b"x")
    c = repo.commit("main", "x")
    again = LakeFSRepository.from_env(name, main_branch="main")
    assert again.resolve("main") == c != head


def test_a_storage_namespace_serves_one_repository(standin_env: LakeFSStandin) -> None:
    LakeFSRepository.from_env(f"first-{uuid.uuid4().hex[:8]}")
    with pytest.raises(DataRepoError, match="storage namespace already in use"):
        LakeFSRepository.from_env(f"second-{uuid.uuid4().hex[:8]}")


def test_open_repository_picks_lakefs(standin_env: LakeFSStandin, tmp_path) -> None:
    from ratchet.core.config import DataConfig
    from ratchet.core.settings import Settings
    from ratchet.data.repository import open_repository

    cfg = DataConfig(backend="lakefs", repository=f"cfg-{uuid.uuid4().hex[:8]}")
    repo = open_repository(Settings(home=tmp_path), cfg)
    assert isinstance(repo, LakeFSRepository)
    assert repo.list_branches().keys() == {"main"}


def test_from_env_errors(standin_env: LakeFSStandin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAKEFS_STORAGE_NAMESPACE")
    with pytest.raises(DataRepoError, match="LAKEFS_STORAGE_NAMESPACE"):
        LakeFSRepository.from_env(f"ns-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("LAKEFS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(DataRepoError, match="401"):
        LakeFSRepository.from_env("whatever-repo")
    monkeypatch.delenv("LAKEFS_ENDPOINT")
    with pytest.raises(DataRepoError, match="LAKEFS_ENDPOINT"):
        LakeFSRepository.from_env("whatever-repo")


def test_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    client = lakefs.Client(host=f"http://127.0.0.1:{port}", username="k", password="s")
    with pytest.raises(DataRepoError, match="cannot reach lakeFS"):
        LakeFSRepository("nobody-home", client).list_branches()


def test_standin_pagination(lakefs_standin: LakeFSStandin) -> None:
    repo = standin_repository(lakefs_standin)
    assert isinstance(repo, LakeFSRepository)
    for b in ("b1", "b2", "b3"):
        repo.create_branch(b, "main")
    for i in range(3):
        repo.put_object("main", f"o{i}", b"x")
        repo.commit("main", f"c{i}")
    sdk = repo._client.sdk_client
    names = [r.id for r in generate_listing(sdk.branches_api.list_branches, repo.repository_id, amount=1)]
    assert names == ["b1", "b2", "b3", "main"]
    ids = [c.id for c in generate_listing(sdk.refs_api.log_commits, repo.repository_id, "main", amount=2)]
    assert ids == [c.id for c in repo.log("main")] and len(ids) == 4
    paths = [
        o.path for o in generate_listing(sdk.objects_api.list_objects, repo.repository_id, "main", amount=2)
    ]
    assert paths == ["o0", "o1", "o2"]


def test_tag_names_follow_lakefs(lakefs_standin: LakeFSStandin) -> None:
    repo = standin_repository(lakefs_standin)
    with pytest.raises(InvalidName, match="cannot contain '/'"):
        repo.create_tag("models/v1", "main")  # the embedded backend takes it; lakeFS does not
    assert repo.create_tag("models-v1", "main") == repo.resolve("main")
    assert lakefs_standin.violations == []


def _raw(standin: LakeFSStandin, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """A request sent without the SDK, so it can break the contract."""
    auth = base64.b64encode(f"{standin.access_key_id}:{standin.secret_access_key}".encode()).decode()
    req = urllib.request.Request(
        f"{standin.endpoint}/api/v1{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_requests_off_lakefs_api_are_refused_and_recorded(lakefs_standin: LakeFSStandin) -> None:
    repo = standin_repository(lakefs_standin)
    status, err = _raw(lakefs_standin, "POST", f"/repositories/{repo.repository_id}/branches", {"name": "x"})
    assert status == 400 and "source" in err["message"]  # BranchCreation requires name and source
    status, _ = _raw(lakefs_standin, "POST", "/repositories",
                     {"name": "Bad_Name", "storage_namespace": "local://standin/bad"})
    assert status == 400  # RepositoryCreation.name's pattern
    off = lakefs_standin.take_violations()
    assert len(off) == 2 and "'source' is a required property" in off[0] and "Bad_Name" in off[1]
    # what lakeFS answers for errors: 404 and 409 with its Error body
    status, err = _raw(lakefs_standin, "GET", f"/repositories/{repo.repository_id}/branches/nope")
    assert (status, err) == (404, {"message": "branch not found"})
    status, err = _raw(lakefs_standin, "POST", f"/repositories/{repo.repository_id}/branches",
                       {"name": "main", "source": "main"})
    assert (status, err) == (409, {"message": "branch already exists: not unique"})


def test_answers_off_lakefs_api_are_caught() -> None:
    """The check of the stand-in's answers can fail: a Ref without its commit id is off."""
    req = ContractRequest.of("http://127.0.0.1:1", "GET", "/api/v1/repositories/r-1/branches/main",
                             {"Authorization": "Basic eDp5"}, b"")
    good = ContractResponse(200, b'{"id": "main", "commit_id": "c"}', "application/json")
    bad = ContractResponse(200, b'{"id": "main"}', "application/json")
    assert response_errors(req, good) == []
    assert any("'commit_id' is a required property" in e for e in response_errors(req, bad))


def test_vendored_document_has_every_call_of_the_pinned_sdk() -> None:
    """The vendored document is the one the installed lakefs-sdk was generated from: every
    (method, path) the SDK's generated API calls is in it, with the same count."""
    doc = yaml.safe_load(SWAGGER.read_text())
    in_doc = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    api_dir = Path(lakefs_sdk.__file__).parent / "api"
    calls = {
        (m, p)
        for f in api_dir.glob("*_api.py")
        for p, m in re.findall(r"call_api\(\s*'([^']+)', '([A-Z]+)'", f.read_text())
    }
    assert len(calls) > 100 and calls == in_doc


def test_standin_enforces_lakefs_name_rules(lakefs_standin: LakeFSStandin) -> None:
    """Rules the document does not state but lakeFS's server enforces (``pkg/validator``,
    ``graveler.ValidateTagID``): what the backend's own checks must keep it from sending."""
    repo = standin_repository(lakefs_standin)
    base = f"/repositories/{repo.repository_id}"
    assert _raw(lakefs_standin, "POST", f"{base}/branches", {"name": "score/x", "source": "main"}) == (
        400, {"message": "branch id: invalid value: validation error"})
    assert _raw(lakefs_standin, "POST", f"{base}/tags", {"id": "models/v1", "ref": "main"}) == (
        400, {"message": "tag id: invalid value: validation error"})
    assert _raw(lakefs_standin, "POST", f"{base}/tags", {"id": "v1..2", "ref": "main"})[0] == 400
    assert _raw(lakefs_standin, "POST", f"{base}/tags", {"id": "v1.2", "ref": "main"})[0] == 201
    assert _raw(lakefs_standin, "DELETE", f"{base}/branches/main") == (
        400, {"message": "cannot delete repository default branch"})
    assert lakefs_standin.violations == []  # all of these are on the contract
