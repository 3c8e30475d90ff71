"""Crash safety of the embedded repository: SIGKILL a writer mid-commit.

A child process commits in a loop; ``RATCHET_DATA_COMMIT_STEP_DELAY`` makes it
sleep after each commit step (tree written, commit written, ref moved), so a
kill at a random moment lands inside a commit most of the time. After each
kill: ``fsck`` is clean, every commit the child reported is readable with its
content, and the repository accepts new commits.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from ratchet.data.repository.embedded import STEP_DELAY_ENV, EmbeddedRepository

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import sys
from ratchet.data.repository.embedded import EmbeddedRepository
repo = EmbeddedRepository.open_or_init(sys.argv[1])
run = sys.argv[2]
i = 0
while True:
    path, data = f"{run}/obj-{i}", f"{run}:{i}".encode() * 100
    repo.put_object("main", path, data)
    print("begin", i, flush=True)
    cid = repo.commit("main", f"{run} {i}", metadata={"i": str(i)})
    print("done", i, cid, path, flush=True)
    i += 1
"""


def _run_and_kill(root: Path, run: str, after_s: float) -> tuple[list[tuple[str, str, bytes]], bool]:
    """Start a committing child, SIGKILL it after ``after_s``; return its reported commits
    and whether it was killed inside a commit."""
    env = {**os.environ, STEP_DELAY_ENV: "0.02", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-u", "-c", CHILD, str(root), run],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert child.stdout is not None
    first = child.stdout.readline()  # wait until it is committing (imports take a while)
    assert first.startswith("begin"), first
    time.sleep(after_s)
    child.send_signal(signal.SIGKILL)
    out = first + child.stdout.read()
    child.wait(timeout=10)
    lines = out.splitlines()
    if lines and not out.endswith("\n"):
        lines = lines[:-1]  # a line torn by the kill
    done = []
    for line in lines:
        parts = line.split()
        if parts and parts[0] == "done" and len(parts) == 4:
            i = int(parts[1])
            done.append((parts[2], parts[3], f"{run}:{i}".encode() * 100))
    mid_commit = bool(lines) and lines[-1].startswith("begin")
    return done, mid_commit


def test_sigkill_mid_commit_leaves_repository_consistent(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    EmbeddedRepository.open_or_init(root)
    rng = random.Random(1234)
    reported: list[tuple[str, str, bytes]] = []
    mid_commit_kills = 0
    for run in range(5):
        done, mid = _run_and_kill(root, f"run{run}", rng.uniform(0.05, 0.4))
        reported += done
        mid_commit_kills += mid

        repo = EmbeddedRepository.open_or_init(root)
        assert repo.fsck() == [], f"after kill {run}"
        history = {c.id for c in repo.log("main")}
        for cid, path, data in reported:
            assert cid in history
            assert repo.get_commit(cid).id == cid
            assert repo.get_object(cid, path) == data
    assert reported, "the child never completed a commit"
    assert mid_commit_kills >= 1, "no kill landed inside a commit"

    # still writable: staged leftovers of a killed commit are committed by the next writer
    repo = EmbeddedRepository.open_or_init(root)
    repo.put_object("main", "after", b"ok")
    cid = repo.commit("main", "after the crashes")
    assert repo.get_object(cid, "after") == b"ok"
    assert repo.fsck() == []


def test_fsck_reports_corruption(tmp_path: Path) -> None:
    repo = EmbeddedRepository.open_or_init(tmp_path / "repo")
    repo.put_object("main", "a", b"hello")
    cid = repo.commit("main", "one")
    repo.create_tag("t", cid)
    assert repo.fsck() == []
    obj = next(p for p in (repo.root / "objects").rglob("*") if p.is_file())
    obj.write_bytes(b"tampered")
    problems = repo.fsck()
    assert any("content digest" in p for p in problems)
    assert any("'a'" in p for p in problems)  # the tree entry pointing at it is reported too
    (repo.root / "refs" / "tags" / "t").write_text("f" * 64)
    assert any("tag 't'" in p for p in repo.fsck())


WRITER = r"""
import sys
from ratchet.data.repository.base import NothingToCommit
from ratchet.data.repository.embedded import EmbeddedRepository
repo = EmbeddedRepository.open_or_init(sys.argv[1])
me = sys.argv[2]
for i in range(8):
    repo.put_object("main", f"{me}/{i}", f"{me}-{i}".encode())
    try:
        print(repo.commit("main", f"{me} {i}"), flush=True)
    except NothingToCommit:
        pass  # another process committed our staged write
"""


def test_concurrent_processes_lose_no_commit(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    EmbeddedRepository.open_or_init(root)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), f"p{k}"], stdout=subprocess.PIPE, text=True, env=env
        )
        for k in range(3)
    ]
    reported = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        reported += out.split()
    repo = EmbeddedRepository.open_or_init(root)
    assert repo.fsck() == []
    history = [c.id for c in repo.log("main")]
    assert set(reported) <= set(history) and len(set(reported)) == len(reported)
    assert len(history) == len(reported) + 1  # one linear chain: nothing overwritten
    assert repo.list_objects("main") == sorted(f"p{k}/{i}" for k in range(3) for i in range(8))


def test_torn_staging_line_is_skipped(tmp_path: Path) -> None:
    repo = EmbeddedRepository.open_or_init(tmp_path / "repo")
    repo.put_object("main", "before", b"1")
    token = (repo.root / "refs" / "branches" / "main").read_text()
    log = next((repo.root / "staging").iterdir())
    assert log.stem in token
    with open(log, "ab") as fh:
        fh.write(b'{"p":"torn","d":"ab')  # a writer killed mid-append
    fresh = EmbeddedRepository.open_or_init(tmp_path / "repo")
    assert fresh.list_objects("main") == ["before"]
    fresh.put_object("main", "after", b"2")
    assert fresh.list_objects("main") == ["after", "before"]
    cid = fresh.commit("main", "both")
    assert fresh.get_object(cid, "after") == b"2" and fresh.fsck() == []
