"""lakeFS-specific behaviour: configuration from the environment, errors, pagination."""

from __future__ import annotations

import socket
import uuid

import lakefs
import pytest
from lakefs.reference import generate_listing

from ratchet.data.repository.base import DataRepoError
from ratchet.data.repository.lakefs import LakeFSRepository
from tests.data.lakefs_standin import LakeFSStandin, standin_repository


@pytest.fixture
def standin_env(lakefs_standin: LakeFSStandin, monkeypatch: pytest.MonkeyPatch) -> LakeFSStandin:
    monkeypatch.setenv("LAKEFS_ENDPOINT", lakefs_standin.endpoint)
    monkeypatch.setenv("LAKEFS_ACCESS_KEY_ID", lakefs_standin.access_key_id)
    monkeypatch.setenv("LAKEFS_SECRET_ACCESS_KEY", lakefs_standin.secret_access_key)
    monkeypatch.setenv("LAKEFS_STORAGE_NAMESPACE", "local://standin")
    return lakefs_standin


def test_from_env_creates_then_opens(standin_env: LakeFSStandin) -> None:
    name = f"env-{uuid.uuid4().hex[:8]}"
    repo = LakeFSRepository.from_env(name, main_branch="main")
    head = repo.resolve("main")
    repo.put_object("main", "x", b"x")
    c = repo.commit("main", "x")
    again = LakeFSRepository.from_env(name, main_branch="main")
    assert again.resolve("main") == c != head


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
