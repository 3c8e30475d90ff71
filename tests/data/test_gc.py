"""`ratchet gc` on the data repository: rejected branches past their age (reports kept), the
embedded repository's unreachable files; through the real CLI, and SIGKILLed mid-collection."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ratchet.core.schema import dump_schema
from ratchet.data import ingest
from ratchet.data.batch_ref import REJECTED_PREFIX
from ratchet.data.repository.embedded import EmbeddedRepository
from ratchet.data.schema_inference import infer_schema
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch, write_batch
from ratchet.runtime.context import load_context
from tests.conftest import CONFIG_FILES
from tests.training.helpers import publish_batches

RATCHET = Path(sys.executable).parent / "ratchet"
GC_NOW = {"retention": {"rejected_branch_age_days": 0, "grace_minutes": 0, "profile_age_days": 1}}


def _gc_config(home: Path) -> str:
    path = home.parent / "gc.yaml"
    path.write_text(json.dumps(GC_NOW))  # JSON is YAML
    return os.pathsep.join([*CONFIG_FILES, str(path)])


def _gc(home: Path, *args: str) -> dict:
    env = {**os.environ, "RATCHET_HOME": str(home), "RATCHET_CONFIG": _gc_config(home)}
    r = subprocess.run([str(RATCHET), "gc", "--json", *args], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def _reject(ctx, df, folder: Path, name: str):
    df = df.copy()
    df["age"] = "not a number"
    path = write_batch(df, folder / f"{name}.csv")
    audited = ingest.audit_batch(path, ctx.schema)
    assert not audited.ok
    branch = ingest.stage_batch(ctx.repo, audited, path, ctx.cfg.data)
    return branch, ingest.commit_batch(ctx.repo, branch, audited), audited.batch_id


def _home_with_history(home: Path, rejected: int = 2):
    ctx = load_context(CONFIG_FILES, home=str(home))
    frames = [generate_batch(i, 200, seed=4) for i in range(3)]
    dump_schema(infer_schema(frames[0], DEMO_TARGET), ctx.settings.schema_path)
    folder = home / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    publish_batches(ctx, frames, folder)
    rejects = [_reject(ctx, frames[i % 3], folder, f"bad-{i}") for i in range(rejected)]
    return ctx, rejects


def _scratch(repo, n: int, objects: int = 2) -> dict[str, set[str]]:
    """``n`` branches with a commit each, deleted: their commits, trees and objects are garbage."""
    import hashlib

    garbage: dict[str, set[str]] = {"commits": set(), "trees": set(), "objects": set()}
    for i in range(n):
        repo.create_branch(f"scratch-{i}", "main")
        for j in range(objects):
            data = f"scratch {i} {j} {random.random()}".encode() * 20
            repo.put_object(f"scratch-{i}", f"scratch/{j}.bin", data)
            garbage["objects"].add(hashlib.sha256(data).hexdigest())
        cid = repo.commit(f"scratch-{i}", f"scratch {i}")
        garbage["commits"].add(cid)
        garbage["trees"].add(repo.commit_tree(cid))
        repo.delete_branch(f"scratch-{i}")
    return garbage


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name != "lock"}


def _every_ref_intact(repo, refs: list[str]) -> int:
    """Every commit reachable from ``refs`` still reads, with all its objects; how many."""
    seen = set()
    for ref in refs:
        for c in repo.log(ref):
            if c.id in seen:
                continue
            seen.add(c.id)
            for path in repo.list_objects(c.id):
                assert repo.get_object(c.id, path) is not None
    return len(seen)


def test_gc_through_the_cli_frees_rejected_branches_and_garbage_and_keeps_every_ref(home):
    ctx, rejects = _home_with_history(home)
    repo = ctx.repo
    (kept_branch, kept_commit, _), (gone_branch, _, gone_batch) = rejects
    repo.create_tag("inspect-this", kept_commit)  # a tag keeps a rejected batch's commit alive
    garbage = _scratch(repo, 3)
    profiles = ctx.settings.serving_dir / "profiles" / "1"
    profiles.mkdir(parents=True)
    (profiles / "20200101T000000Z.bin").write_bytes(b"x" * 1000)  # a window from long ago
    fresh = profiles / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.bin"
    fresh.write_bytes(b"y" * 10)
    before, main_commits = _files(home), _every_ref_intact(repo, ["main"])

    dry = _gc(home, "--dry-run")
    assert dry["dry_run"] and dry["bytes_freed"] > 0
    assert _files(home) == before, "a dry run removed or changed files"
    assert set(dry["parts"]["rejected_branches"]["items"]) == {kept_branch, gone_branch}

    out = _gc(home)
    parts = out["parts"]
    assert out["bytes_freed"] == dry["bytes_freed"] > 0
    assert parts["repository"]["counts"]["commits"] >= 4 and parts["repository"]["counts"]["objects"] >= 6
    assert parts["profiles"]["counts"] == {"windows": 1} and parts["profiles"]["bytes"] == 1000
    assert fresh.exists()
    assert EmbeddedRepository(repo.root).fsck() == []
    assert not {b for b in repo.list_branches() if b.startswith(("ingest-", "scratch-"))}
    report = json.loads((ctx.settings.reports_dir / "rejected" / f"{gone_batch}.json").read_text())
    assert report["report"]["status"] == "rejected" and report["report"]["violations"]
    assert report["branch"] == gone_branch
    # everything main and the tag reach is whole; the tagged rejected batch keeps its raw bytes
    assert _every_ref_intact(repo, ["main"]) == main_commits
    assert _every_ref_intact(repo, ["inspect-this"]) >= 2
    assert any(p.startswith(REJECTED_PREFIX) for p in repo.list_objects("inspect-this"))
    for kind, digests in garbage.items():
        assert not any(repo._cas_path(kind, d).exists() for d in digests), kind
    from ratchet.runtime.gc import run_gc

    again = run_gc(load_context(_gc_config(home).split(os.pathsep), home=str(home))).to_dict()
    assert again["bytes_freed"] == 0, again


def test_young_rejected_branches_and_young_files_are_kept(home):
    """The defaults: a rejected branch stays 30 days, a file of the repository an hour."""
    ctx, ((branch, commit, _),) = _home_with_history(home, rejected=1)
    garbage = _scratch(ctx.repo, 1)
    from ratchet.runtime.gc import run_gc

    out = run_gc(ctx).to_dict()
    assert out["bytes_freed"] == 0, out
    assert ctx.repo.list_branches()[branch] == commit
    assert all(ctx.repo._cas_path(kind, d).exists() for kind, ds in garbage.items() for d in ds)


def test_an_object_collected_before_it_is_staged_is_refused(home):
    """A writer that found an old copy of its object (and so did not write it) never stages
    a digest that gc removed meanwhile: the write fails and nothing dangling is staged."""
    import hashlib

    from ratchet.data.repository.base import DataRepoError

    repo = EmbeddedRepository.open_or_init(home / "repo")
    repo.create_branch("b", "main")
    digest = hashlib.sha256(b"payload").hexdigest()
    with pytest.raises(DataRepoError, match="vanished"):
        repo._stage("b", "p.bin", digest)  # the object file is not there (collected)
    assert not repo.uncommitted("b") and repo.fsck() == []
    repo.put_object("b", "p.bin", b"payload")  # written again: staged
    assert repo.get_object("b", "p.bin") == b"payload"


@pytest.mark.slow  # four CLI processes, three of them killed: about 50 s on a loaded 2-core machine
def test_sigkill_in_the_middle_of_gc_leaves_fsck_clean_and_the_next_gc_finishes(home, monkeypatch):
    """``RATCHET_GC_STEP_DELAY`` spreads the deletions out (4 ms each) so that a kill lands
    inside each phase: commits, then trees, then objects (trees and objects by name)."""
    from ratchet.data.gc import STEP_DELAY_ENV

    monkeypatch.setenv("RATCHET_DATA_FSYNC", "0")  # building the garbage fast; gc itself fsyncs
    ctx, _ = _home_with_history(home, rejected=3)
    garbage = _scratch(ctx.repo, 80, objects=3)
    repo = EmbeddedRepository(ctx.repo.root)
    main_commits = _every_ref_intact(repo, ["main"])
    env = {**os.environ, "RATCHET_HOME": str(home), "RATCHET_CONFIG": _gc_config(home), STEP_DELAY_ENV: "0.004"}
    env.pop("RATCHET_DATA_FSYNC")
    rng = random.Random(16)
    victims = [("commits", rng.choice(sorted(garbage["commits"]))),
               ("trees", sorted(garbage["trees"])[len(garbage["trees"]) // 2]),
               ("objects", sorted(garbage["objects"])[len(garbage["objects"]) // 3])]
    total = sum(map(len, garbage.values()))
    for kind, digest in victims:
        victim = repo._cas_path(kind, digest)
        assert victim.exists()
        child = subprocess.Popen([str(RATCHET), "gc", "--json"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while victim.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.02))  # a random moment shortly after
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL, f"gc finished before the kill ({kind}): {child.stderr.read()}"
        assert not victim.exists(), f"gc did not reach its {kind} in 120 s"
        left = sum(repo._cas_path(k, d).exists() for k, ds in garbage.items() for d in ds)
        assert 0 < left < total, (kind, left)
        assert repo.fsck() == [], kind
        assert _every_ref_intact(repo, ["main"]) == main_commits
    out = _gc(home)
    assert out["bytes_freed"] > 0
    assert not any(repo._cas_path(k, d).exists() for k, ds in garbage.items() for d in ds)
    assert repo.fsck() == [] and _every_ref_intact(repo, ["main"]) == main_commits


def test_an_unreadable_ref_stops_gc_before_anything_is_deleted(home):
    """A branch whose ref cannot be read might reach anything: nothing is collected."""
    from ratchet.data.gc import prune_unreachable
    from ratchet.data.repository.base import DataRepoError

    repo = EmbeddedRepository.open_or_init(home / "repo")
    garbage = _scratch(repo, 2)
    (repo.root / "refs" / "branches" / "broken").write_text("{not json")
    with pytest.raises(DataRepoError, match="'broken': unreadable ref file"):
        prune_unreachable(repo, grace_s=0)
    assert all(repo._cas_path(kind, d).exists() for kind, ds in garbage.items() for d in ds)
