"""The flows on the lakeFS backend: ingest (published and rejected), train, promote, score, gc and
backup through the CLI and Prefect (its test harness), with the data on a lakeFS server.

The server is the stand-in (``tests/data/lakefs_standin.py``), one for the module: every request
the backend sends and every answer it gets is checked against lakeFS's vendored OpenAPI document,
and the module fails on any exchange off it. With ``LAKEFS_ENDPOINT`` (and the keys and
``LAKEFS_STORAGE_NAMESPACE``) set, the same tests run against that server instead when selected
with ``-m lakefs`` (``docs/scale.md``: a quickstart lakeFS).
"""

from __future__ import annotations

import json
import os
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import lakefs
import pandas as pd
import pytest

from ratchet.data.repository.lakefs import LakeFSRepository
from tests.conftest import CONFIG_FILES
from tests.data.lakefs_standin import LakeFSStandin

LAKEFS_VARS = ("LAKEFS_ENDPOINT", "LAKEFS_ACCESS_KEY_ID", "LAKEFS_SECRET_ACCESS_KEY", "LAKEFS_STORAGE_NAMESPACE")


@dataclass
class LakeFSWorld:
    """A home whose data repository is on lakeFS; ``server`` is the stand-in or None (a real one)."""

    home: Path
    cli: Callable  # `ratchet ARGS...` in-process (typer's runner), with this world's environment
    repo: LakeFSRepository  # the same repository, seen directly (not through ratchet's config)
    server: LakeFSStandin | None
    published: dict
    rejected: dict


def _server_env(tmp: Path, real: bool) -> tuple[dict[str, str], LakeFSStandin | None]:
    if real:
        missing = [v for v in LAKEFS_VARS if not os.environ.get(v)]
        if missing:
            pytest.skip(f"no real lakeFS server to test against: {', '.join(missing)} not set")
        return {v: os.environ[v] for v in LAKEFS_VARS}, None
    server = LakeFSStandin(tmp / "lakefs").start()
    return {
        "LAKEFS_ENDPOINT": server.endpoint,
        "LAKEFS_ACCESS_KEY_ID": server.access_key_id,
        "LAKEFS_SECRET_ACCESS_KEY": server.secret_access_key,
        "LAKEFS_STORAGE_NAMESPACE": "local://standin/flows",
    }, server


@pytest.fixture(
    scope="module",
    params=["lakefs-standin", pytest.param("lakefs", marks=pytest.mark.lakefs)],
)
def lakefs_world(request, tmp_path_factory, demo_data) -> Iterator[LakeFSWorld]:
    from typer.testing import CliRunner

    from ratchet_cli.main import app

    tmp = tmp_path_factory.mktemp("lakefs-flows")
    with pytest.MonkeyPatch.context() as mp:
        env, server = _server_env(tmp, real=request.param == "lakefs")
        name = f"ratchet-flows-{uuid.uuid4().hex[:8]}"
        env["LAKEFS_STORAGE_NAMESPACE"] = f"{env['LAKEFS_STORAGE_NAMESPACE'].rstrip('/')}/{name}"
        for k, v in env.items():
            mp.setenv(k, v)
        # JSON is YAML: the lakeFS backend, GC that collects a rejected branch at once, a short fit
        override = tmp / "lakefs.yaml"
        override.write_text(json.dumps({
            "data": {"backend": "lakefs", "repository": name},
            "retention": {"rejected_branch_age_days": 0, "grace_minutes": 0},
            "train": {"max_epochs": 1, "checkpointing": False},  # what is tested here is the data path
        }))
        mp.setenv("RATCHET_CONFIG", os.pathsep.join([*CONFIG_FILES, str(override)]))
        home = tmp / "home"
        mp.setenv("RATCHET_HOME", str(home))
        runner = CliRunner()

        def cli(*args: str):
            return runner.invoke(app, list(args), catch_exceptions=False)

        r = cli("init", "--schema-from", demo_data.clean[0], "--target", demo_data.target, "--json")
        assert r.exit_code == 0, r.output
        client = lakefs.Client(host=env["LAKEFS_ENDPOINT"], username=env["LAKEFS_ACCESS_KEY_ID"],
                               password=env["LAKEFS_SECRET_ACCESS_KEY"])
        repo = LakeFSRepository(name, client)
        assert repo.resolve("main") == json.loads(r.stdout)["main"]

        r = cli("ingest", demo_data.clean[0], "--json")
        assert r.exit_code == 0, r.output
        published = json.loads(r.stdout)
        bad = tmp / "missing-income.csv"
        pd.read_csv(demo_data.clean[1]).drop(columns=["income"]).to_csv(bad, index=False)
        r = cli("ingest", str(bad), "--json")
        assert r.exit_code == 2, r.output
        try:
            yield LakeFSWorld(home, cli, repo, server, published, json.loads(r.stdout))
        finally:
            if server is not None:
                server.stop()
            else:
                lakefs.Repository(name, client=client).delete()


@pytest.fixture
def world(lakefs_world: LakeFSWorld) -> Iterator[LakeFSWorld]:
    """The module's world; a test fails on any exchange off lakeFS's API during it (or before)."""
    yield lakefs_world
    if lakefs_world.server is not None:
        off = lakefs_world.server.take_violations()
        assert not off, "exchanges off lakeFS's OpenAPI document:\n" + "\n".join(off)


def test_ingest_publishes_to_lakefs_main_and_keeps_a_rejected_branch(world: LakeFSWorld, demo_data) -> None:
    repo, published, rejected = world.repo, world.published, world.rejected
    assert published["status"] == "published" and published["violations"] == []
    assert repo.resolve("main") == published["commit"]  # the merge is lakeFS's main head
    batches = [p for p in repo.list_objects("main") if p.endswith(".parquet")]
    assert len(batches) == 1
    assert len(repo.read_dataframe("main", batches[0])) == len(pd.read_csv(demo_data.clean[0]))

    assert rejected["status"] == "rejected"
    assert any(v["column"] == "income" for v in rejected["violations"])
    assert repo.resolve(rejected["branch"]) == rejected["commit"]  # kept on lakeFS to look at
    assert repo.resolve("main") == published["commit"]  # main never moved
    status = json.loads(world.cli("status", "--json").stdout)
    assert status["data"] == published["commit"]


def test_train_promote_and_score_on_lakefs(world: LakeFSWorld, demo_data, tmp_path) -> None:
    cli, repo = world.cli, world.repo
    r = cli("train", "--trials", "1", "--json")
    assert r.exit_code == 0, r.output
    trained = json.loads(r.stdout)
    assert trained["model_version"] == "1"
    assert repo.resolve("main").endswith(trained["data_commit"])  # trained on lakeFS's main head

    r = cli("promote", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["champion"] == "1"

    rows = pd.read_csv(demo_data.clean[1]).drop(columns=[demo_data.target]).head(50)
    src = tmp_path / "to-score.csv"
    rows.to_csv(src, index=False)
    out = tmp_path / "predictions.csv"
    r = cli("score", str(src), "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    scored = json.loads(r.stdout)
    assert scored["rows"] == 50 and scored["model_version"] == "1"
    assert len(pd.read_csv(out)) == 50
    # committed on lakeFS: the run's branch merged into `predictions`, then deleted
    assert repo.resolve("predictions") == scored["repo_commit"]
    stored = repo.read_dataframe("predictions", scored["repo_path"])
    assert list(stored["row_id"]) == list(range(50))
    assert not [b for b in repo.list_branches() if b.startswith("score")]
    assert repo.resolve("main") == world.published["commit"]  # predictions never reach main


def test_gc_and_backup_on_lakefs(world: LakeFSWorld, tmp_path) -> None:
    cli, repo = world.cli, world.repo
    branch = world.rejected["branch"]
    r = cli("gc", "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    assert repo.branch_exists(branch)
    r = cli("gc", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["parts"]["rejected_branches"]["items"] == [branch]
    assert not repo.branch_exists(branch)  # deleted on lakeFS
    batch = world.rejected["batch_id"]
    kept = json.loads((world.home / "reports" / "rejected" / f"{batch}.json").read_text())
    assert kept["branch"] == branch and kept["commit"] == world.rejected["commit"]

    archive = tmp_path / "backup.tar.gz"
    r = cli("backup", str(archive), "--json")
    assert r.exit_code == 0, r.output
    with tarfile.open(archive) as tar:
        assert any(n.endswith("ratchet.yaml") or n.endswith("schema.yaml") for n in tar.getnames())
    assert repo.resolve("main") == world.published["commit"]
