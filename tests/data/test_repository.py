"""One behavioural suite for every DataRepository backend (see conftest.repo)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ratchet.data.repository.base import (
    BranchExists,
    Change,
    DataRepoError,
    DataRepository,
    MergeConflict,
    NothingToCommit,
    ObjectNotFound,
    RefNotFound,
)
from ratchet.data.repository.embedded import EmbeddedRepository
from ratchet.data.repository.semantics import InvalidName

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _commit_files(
    repo: DataRepository, files: dict[str, bytes | None], branch: str = "main", msg: str = "c"
) -> str:
    """Stage ``files`` (None: delete) on ``branch`` and commit."""
    for path, data in files.items():
        if data is None:
            repo.delete_object(branch, path)
        else:
            repo.put_object(branch, path, data)
    return repo.commit(branch, msg)


def _cas_files(root: Path) -> int:
    return sum(1 for kind in ("objects", "trees", "commits") for p in (root / kind).rglob("*") if p.is_file())


# --------------------------------------------------------------------- basics
def test_main_resolves_on_a_new_repository(repo: DataRepository) -> None:
    head = repo.resolve(repo.main_branch)
    assert HEX64.match(head)
    assert repo.list_branches() == {repo.main_branch: head}
    assert [c.id for c in repo.log(repo.main_branch)] == [head]
    assert repo.list_objects("main") == []


def test_put_get_list_delete(repo: DataRepository) -> None:
    repo.put_object("main", "a.txt", b"A")
    repo.put_object("main", "dir/b.bin", b"\x00\x01")
    repo.put_object("main", "dir/c.bin", b"")
    repo.put_object("main", "other/d", b"D")
    assert repo.get_object("main", "a.txt") == b"A"
    assert repo.get_object("main", "dir/c.bin") == b""
    assert repo.list_objects("main") == ["a.txt", "dir/b.bin", "dir/c.bin", "other/d"]
    assert repo.list_objects("main", prefix="dir/") == ["dir/b.bin", "dir/c.bin"]
    repo.put_object("main", "a.txt", b"A2")
    assert repo.get_object("main", "a.txt") == b"A2"
    repo.delete_object("main", "dir/b.bin")
    with pytest.raises(ObjectNotFound):
        repo.get_object("main", "dir/b.bin")
    with pytest.raises(ObjectNotFound):
        repo.delete_object("main", "dir/b.bin")
    with pytest.raises(ObjectNotFound):
        repo.get_object("main", "never-written")
    assert repo.list_objects("main") == ["a.txt", "dir/c.bin", "other/d"]


def test_staging_visible_on_branch_not_at_commit(repo: DataRepository) -> None:
    c1 = _commit_files(repo, {"keep": b"1", "gone": b"2"})
    repo.put_object("main", "new", b"3")
    repo.delete_object("main", "gone")
    assert repo.get_object("main", "new") == b"3"
    assert repo.list_objects("main") == ["keep", "new"]
    assert repo.resolve("main") == c1  # staging does not move the head
    with pytest.raises(ObjectNotFound):
        repo.get_object(c1, "new")
    assert repo.get_object(c1, "gone") == b"2"
    assert repo.list_objects(c1) == ["gone", "keep"]
    c2 = repo.commit("main", "stage it")
    assert repo.list_objects(c2) == ["keep", "new"]
    assert repo.list_objects(c1) == ["gone", "keep"]


def test_commit_ids_history_and_older_commits(repo: DataRepository) -> None:
    root = repo.resolve("main")
    c1 = _commit_files(repo, {"data.csv": b"v1"}, msg="first")
    repo.put_object("main", "data.csv", b"v2")
    c2 = repo.commit("main", "second", metadata={"rows": "2", "source": "test"})
    assert HEX64.match(c1) and HEX64.match(c2) and c1 != c2
    commit = repo.get_commit(c2)
    assert commit.id == c2
    assert commit.parents == (c1,)
    assert commit.message == "second"
    assert commit.metadata == {"rows": "2", "source": "test"}
    assert commit.created_at > 0
    assert [c.id for c in repo.log("main")] == [c2, c1, root]
    assert [c.id for c in repo.log("main", limit=2)] == [c2, c1]
    assert [c.id for c in repo.log(c1)] == [c1, root]
    assert repo.get_object(c1, "data.csv") == b"v1"
    assert repo.get_object(c2, "data.csv") == b"v2"
    with pytest.raises(NothingToCommit):
        repo.commit("main", "nothing staged")


def test_commit_metadata_values_become_strings(repo: DataRepository) -> None:
    c = _commit_files(repo, {"x": b"x"})
    repo.put_object("main", "y", b"y")
    c = repo.commit("main", "meta", metadata={"rows": 3, "ok": True})  # type: ignore[dict-item]
    assert repo.get_commit(c).metadata == {"rows": "3", "ok": "True"}


# --------------------------------------------------------------------- branches
def test_branch_from_any_ref(repo: DataRepository) -> None:
    c1 = _commit_files(repo, {"a": b"1"})
    repo.create_tag("t1", c1)
    c2 = _commit_files(repo, {"a": b"2"})
    repo.put_object("main", "staged", b"s")  # branching takes the committed head only
    assert repo.create_branch("from-branch", "main") == c2
    assert repo.create_branch("from-commit", c1) == c1
    assert repo.create_branch("from-tag", "t1") == c1
    assert repo.list_objects("from-branch") == ["a"]
    assert repo.get_object("from-commit", "a") == b"1"
    branches = repo.list_branches()
    assert branches["from-branch"] == c2 and branches["from-commit"] == c1 and branches["from-tag"] == c1
    assert repo.branch_exists("from-tag") and not repo.branch_exists("nope")
    # branches are isolated
    _commit_files(repo, {"only-here": b"x"}, branch="from-tag")
    assert "only-here" not in repo.list_objects("main")
    with pytest.raises(BranchExists):
        repo.create_branch("from-tag", "main")
    with pytest.raises(RefNotFound):
        repo.create_branch("orphan", "no-such-ref")


def test_zero_copy_branch(tmp_path: Path) -> None:
    # the embedded store's own files (lakeFS branches without copying by design): no backend loop
    repo = EmbeddedRepository.open_or_init(tmp_path / "repo")
    for i in range(30):
        repo.put_object("main", f"part-{i}", bytes([i]) * 1000)
    repo.commit("main", "data")
    before = _cas_files(repo.root)
    for i in range(10):
        repo.create_branch(f"b{i}", "main")
    assert _cas_files(repo.root) == before  # a branch is one ref file
    assert repo.list_objects("b9") == repo.list_objects("main")


def test_delete_branch(repo: DataRepository) -> None:
    c = _commit_files(repo, {"x": b"x"})
    repo.create_branch("tmp", "main")
    c_tmp = _commit_files(repo, {"y": b"y"}, branch="tmp")
    repo.delete_branch("tmp")
    assert "tmp" not in repo.list_branches()
    with pytest.raises(RefNotFound):
        repo.resolve("tmp")
    with pytest.raises(RefNotFound):
        repo.delete_branch("tmp")
    assert repo.get_object(c_tmp, "y") == b"y"  # commits outlive their branch
    assert repo.resolve("main") == c
    with pytest.raises(DataRepoError, match="main branch"):
        repo.delete_branch("main")


def test_branch_names_with_slash(repo: DataRepository) -> None:
    name = "ingest/2026-05-01T120000-abc123"
    if isinstance(repo, EmbeddedRepository):
        assert repo.create_branch(name, "main") == repo.resolve("main")
        assert name in repo.list_branches()
        _commit_files(repo, {"batch.parquet": b"p"}, branch=name)
        repo.merge(name, "main")
        assert repo.list_objects("main") == ["batch.parquet"]
    else:  # lakeFS branch ids are ^\w[-\w]*$
        with pytest.raises(InvalidName, match="cannot contain '/'"):
            repo.create_branch(name, "main")


# --------------------------------------------------------------------- diff / merge
def test_diff(repo: DataRepository) -> None:
    c1 = _commit_files(repo, {"a": b"1", "b": b"1", "c": b"1"})
    c2 = _commit_files(repo, {"a": b"2", "b": None, "d": b"1"})
    assert repo.diff(c1, c2) == [
        Change("a", "changed"),
        Change("b", "removed"),
        Change("d", "added"),
    ]
    assert repo.diff(c2, c1) == [
        Change("a", "changed"),
        Change("b", "added"),
        Change("d", "removed"),
    ]
    assert repo.diff(c1, c1) == []
    repo.put_object("main", "e", b"staged")
    assert repo.diff(c2, "main") == []  # committed content only


def test_merge_without_conflict(repo: DataRepository) -> None:
    _commit_files(repo, {"shared": b"s"})
    repo.create_branch("feat", "main")
    feat_head = _commit_files(repo, {"f": b"f"}, branch="feat")
    main_head = _commit_files(repo, {"m": b"m"})
    merged = repo.merge("feat", "main", message="bring feat", metadata={"by": "test"})
    commit = repo.get_commit(merged)
    assert commit.parents == (main_head, feat_head)
    assert commit.message == "bring feat"
    assert commit.metadata == {"by": "test"}
    assert repo.resolve("main") == merged
    assert repo.list_objects("main") == ["f", "m", "shared"]
    # merging again changes nothing
    assert repo.merge("feat", "main") == merged
    # dest is an ancestor of source: still a two-parent merge commit, content of source
    repo.create_branch("ff", "main")
    ff_head = _commit_files(repo, {"g": b"g"}, branch="ff")
    merged2 = repo.merge("ff", "main")
    assert repo.get_commit(merged2).parents == (merged, ff_head)
    assert repo.list_objects("main") == repo.list_objects(ff_head)


def _conflict_scenario(repo: DataRepository) -> None:
    _commit_files(repo, {"p": b"base", "q": b"base", "s": b"base", "u": b"base"})
    repo.create_branch("feat", "main")
    _commit_files(repo, {"p": b"feat", "q": None, "s": b"same", "r": b"new"}, branch="feat")
    _commit_files(repo, {"p": b"main", "q": b"main", "s": b"same", "u": b"main"})
    repo.create_branch("d1", "main")
    repo.create_branch("d2", "main")


def test_merge_conflict_fail(repo: DataRepository) -> None:
    _conflict_scenario(repo)
    head = repo.resolve("main")
    with pytest.raises(MergeConflict) as exc:
        repo.merge("feat", "main")
    assert exc.value.paths == ["p", "q"]  # same change on both sides ("s") is not a conflict
    assert repo.resolve("main") == head


def test_merge_conflict_source_and_dest_wins(repo: DataRepository) -> None:
    _conflict_scenario(repo)
    repo.merge("feat", "d1", strategy="source-wins")
    assert repo.get_object("d1", "p") == b"feat"
    assert "q" not in repo.list_objects("d1")
    assert repo.get_object("d1", "r") == b"new"
    assert repo.get_object("d1", "u") == b"main"  # non-conflicting dest change kept
    repo.merge("feat", "d2", strategy="dest-wins")
    assert repo.get_object("d2", "p") == b"main"
    assert repo.get_object("d2", "q") == b"main"
    assert repo.get_object("d2", "r") == b"new"  # non-conflicting source change taken
    assert repo.get_object("d2", "s") == b"same"


def test_merge_refuses_dirty_destination_and_bad_strategy(repo: DataRepository) -> None:
    repo.create_branch("feat", "main")
    _commit_files(repo, {"f": b"f"}, branch="feat")
    repo.put_object("main", "uncommitted", b"u")
    with pytest.raises(DataRepoError, match="uncommitted changes"):
        repo.merge("feat", "main")
    with pytest.raises(DataRepoError, match="strategy"):
        repo.merge("feat", "main", strategy="theirs")  # type: ignore[arg-type]


# --------------------------------------------------------------------- tags / refs
def test_tags_and_resolve(repo: DataRepository) -> None:
    c1 = _commit_files(repo, {"a": b"1"})
    assert repo.create_tag("v1.0", "main") == c1
    _commit_files(repo, {"a": b"2"})
    assert repo.list_tags() == {"v1.0": c1}
    assert repo.resolve("v1.0") == c1
    assert repo.resolve(c1) == c1
    assert repo.get_object("v1.0", "a") == b"1"  # a tag does not move
    with pytest.raises(DataRepoError, match="exists"):
        repo.create_tag("v1.0", "main")
    with pytest.raises(RefNotFound):
        repo.create_tag("v2", "no-such-ref")
    with pytest.raises(DataRepoError):
        repo.create_tag("bad tag", "main")


def test_clear_errors_on_bad_refs_and_names(repo: DataRepository) -> None:
    missing = "0" * 64
    for call in (
        lambda: repo.resolve("nope"),
        lambda: repo.resolve(missing),
        lambda: repo.resolve("has space"),
        lambda: repo.get_commit(missing),
        lambda: repo.get_object("nope", "x"),
        lambda: repo.list_objects("nope"),
        lambda: repo.put_object("nope", "x", b"x"),
        lambda: repo.commit("nope", "m"),
        lambda: repo.log("nope"),
        lambda: repo.diff("main", "nope"),
        lambda: repo.merge("nope", "main"),
        lambda: repo.delete_branch("nope"),
    ):
        with pytest.raises(RefNotFound):
            call()
    for bad in ("bad name", "-lead", "", "a//b", "trailing/", "x" * 300, "semi;colon"):
        with pytest.raises(InvalidName):
            repo.create_branch(bad, "main")


# --------------------------------------------------------------------- data
def test_dataframe_round_trip(repo: DataRepository) -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=500),
            "n": rng.integers(0, 100, size=500),
            "cat": rng.choice(["a", "b", "c"], size=500),
            "flag": rng.random(500) > 0.5,
            "when": pd.date_range("2026-01-01", periods=500, freq="h"),
        }
    )
    repo.create_branch("ingest", "main")
    repo.write_dataframe("ingest", "batches/b1.parquet", df)
    pd.testing.assert_frame_equal(repo.read_dataframe("ingest", "batches/b1.parquet"), df)
    c = repo.commit("ingest", "batch")
    pd.testing.assert_frame_equal(repo.read_dataframe(c, "batches/b1.parquet"), df)


def test_concurrent_commits_lose_nothing(repo: DataRepository) -> None:
    threads, rounds = 5, 4
    committed: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        try:
            for r in range(rounds):
                repo.put_object("main", f"t{t}/r{r}", f"{t}-{r}".encode())
                try:
                    cid = repo.commit("main", f"t{t} r{r}")
                except NothingToCommit:
                    continue  # another thread's commit took our staged write
                with lock:
                    committed.append(cid)
        except BaseException as e:  # surfaced below
            errors.append(e)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert not errors, errors
    head = repo.resolve("main")
    expected = sorted(f"t{t}/r{r}" for t in range(threads) for r in range(rounds))
    assert repo.list_objects(head) == expected
    history = [c.id for c in repo.log("main")]
    assert set(committed) <= set(history)
    assert len(set(committed)) == len(committed)
    assert len(history) == len(committed) + 1  # a linear chain: no commit lost or overwritten
