"""Fixtures: the same ``repo`` for every backend.

``repo`` runs each test against the embedded backend, the lakeFS backend
talking to the in-process lakeFS stand-in, and (marked ``lakefs``, only when
``LAKEFS_ENDPOINT`` is set) a real lakeFS server. A test that used the stand-in
fails if any request or answer was off lakeFS's OpenAPI document
(``lakefs_contract``), even where the backend turned the 400 into another error.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratchet.data.repository.base import DataRepository
from ratchet.data.repository.embedded import EmbeddedRepository
from tests.data.lakefs_standin import LakeFSStandin, standin_repository

BACKENDS = [
    "embedded",
    "lakefs-standin",
    pytest.param("lakefs", marks=pytest.mark.lakefs),
]


@pytest.fixture(scope="session")
def lakefs_standin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LakeFSStandin]:
    standin = LakeFSStandin(tmp_path_factory.mktemp("lakefs-standin")).start()
    yield standin
    standin.stop()


@pytest.fixture
def lakefs_standin(lakefs_standin_server: LakeFSStandin) -> Iterator[LakeFSStandin]:
    """The session's stand-in; the test fails on any exchange off lakeFS's API document."""
    lakefs_standin_server.take_violations()
    yield lakefs_standin_server
    off = lakefs_standin_server.take_violations()
    assert not off, "exchanges off lakeFS's OpenAPI document:\n" + "\n".join(off)


def _real_lakefs_repository() -> Iterator[DataRepository]:
    import lakefs

    from ratchet.data.repository.lakefs import LakeFSRepository

    if not os.environ.get("LAKEFS_ENDPOINT"):
        pytest.skip("LAKEFS_ENDPOINT is not set: no real lakeFS server to test against")
    namespace = os.environ.get("LAKEFS_STORAGE_NAMESPACE")
    if not namespace:
        pytest.skip("LAKEFS_STORAGE_NAMESPACE is not set: cannot create a test repository")
    client = lakefs.Client(
        host=os.environ["LAKEFS_ENDPOINT"],
        username=os.environ["LAKEFS_ACCESS_KEY_ID"],
        password=os.environ["LAKEFS_SECRET_ACCESS_KEY"],
    )
    name = f"ratchet-test-{uuid.uuid4().hex[:10]}"
    repo = LakeFSRepository(name, client)
    repo.ensure_exists(f"{namespace.rstrip('/')}/{name}")
    try:
        yield repo
    finally:
        lakefs.Repository(name, client=client).delete()


@pytest.fixture(params=BACKENDS)
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataRepository]:
    if request.param == "embedded":
        yield EmbeddedRepository.open_or_init(tmp_path / "repo")
    elif request.param == "lakefs-standin":
        yield standin_repository(request.getfixturevalue("lakefs_standin"))
    else:
        yield from _real_lakefs_repository()
