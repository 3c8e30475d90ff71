"""``ratchet backup`` / ``ratchet restore`` through the real CLI: a home with history (data
commits, branches, a tag, a staged write, two registered versions, promotions in the ledger,
an Optuna study) backed up, the old home deleted, restored elsewhere: the same champion loads
and predicts the same, the same history and a sound hash chain, ``fsck`` clean, no path left
pointing at the old home. A backup taken while another process keeps ingesting, promoting
and appending restores to a consistent home. A damaged archive is one line naming it."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ratchet.core.settings import Settings
from ratchet.data.repository.embedded import EmbeddedRepository
from ratchet.promotion.ledger import Entry, Ledger
from ratchet.promotion.promote import promote
from ratchet.training.registry import Registry
from ratchet_cli.main import app
from tests.cli.test_cli import one_line_error
from tests.conftest import ROOT

RATCHET = Path(sys.executable).parent / "ratchet"
MODEL, EXPERIMENT = "ratchet-classifier", "ratchet"
TOKEN = "s3cret-admin-token"
runner = CliRunner()


def cli(*args: str) -> dict:
    before = os.environ.get("RATCHET_HOME")
    try:
        result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    finally:  # --home exports RATCHET_HOME: keep it to this call
        if before is None:
            os.environ.pop("RATCHET_HOME", None)
        else:
            os.environ["RATCHET_HOME"] = before
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def rows(n: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})


@dataclass
class Source:
    home: Path
    archive: Path
    backup: dict
    history: list
    predictions: list
    branches: dict
    tags: dict
    staged: list
    checkpoint: Path


def build_home(home: Path) -> Settings:
    """A home with history, made through the core library (no Prefect, no torch)."""
    import mlflow
    import optuna
    from sklearn.linear_model import LogisticRegression

    settings = Settings(home=home).ensure()
    repo = EmbeddedRepository.open_or_init(settings.data_dir / "ratchet")
    for k in range(3):
        repo.create_branch(f"ingest-{k}", "main")
        repo.write_dataframe(f"ingest-{k}", f"batches/{k}.parquet", rows(50, k))
        repo.commit(f"ingest-{k}", f"batch {k}", {"batch": str(k)})
        repo.merge(f"ingest-{k}", "main")
        if k != 1:  # ingest-1 stays, as a rejected batch's branch does
            repo.delete_branch(f"ingest-{k}")
    repo.create_tag("first-model", "main")
    repo.create_branch("wip", "main")
    repo.put_object("wip", "notes/staged.txt", b"staged, not committed")

    registry, ledger = Registry(settings, MODEL, EXPERIMENT), Ledger(settings.ledger)
    registry.activate()
    train = rows(200, 9)
    with mlflow.start_run():
        mlflow.log_dict({"trials": 2}, "config.json")
        model = LogisticRegression().fit(train, (train["x1"] - train["x2"] > 0).astype(int))
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    for _ in range(2):  # two versions of one model: the second promotion leaves a "previous"
        version = registry.register(info.model_uri, {"data_commit": repo.resolve("main")})
        promote(registry, ledger, version, trigger="test", data_commit=repo.resolve("main"))
    ledger.append(Entry(action="traffic", trigger="test", model=MODEL, from_version="2", to_version="1", traffic=0.25))

    checkpoint = settings.checkpoints_dir / "study" / "0" / "predictor.pkl"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"a checkpoint")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="study", storage=settings.optuna_url)
    trial = study.ask()
    trial.set_user_attr("checkpoint", str(checkpoint))
    study.tell(trial, 0.5)

    (settings.root / "run").mkdir(exist_ok=True)
    (settings.root / "run" / "admin-token").write_text(TOKEN)
    (settings.root / "run" / "admin-token").chmod(0o600)
    (settings.root / "run" / "stack.json").write_text('{"processes": {}}')  # this machine's: not copied
    (settings.root / "ratchet.yaml").write_text("tune: {trials: 2}\n")
    (settings.reports_dir / "report.json").write_text('{"ok": true}')
    return settings


def predictions(home: Path) -> list:
    import mlflow

    Registry(Settings(home=home), MODEL, EXPERIMENT).use_stores()
    return mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(rows()).tolist()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Source:
    base = tmp_path_factory.mktemp("backup")
    settings = build_home(base / "old-home")
    repo = EmbeddedRepository(settings.data_dir / "ratchet")
    archive = base / "archives" / "home.tar.gz"
    backup = cli("--home", str(settings.root), "backup", str(archive))
    return Source(
        settings.root, archive, backup, cli("--home", str(settings.root), "history")["entries"],
        predictions(settings.root), repo.list_branches(), repo.list_tags(), repo.uncommitted("wip"),
        settings.checkpoints_dir / "study" / "0" / "predictor.pkl",
    )


def texts_naming(db: Path, needle: str) -> list[str]:
    """``table.column`` of every value of a database that contains ``needle``."""
    found = []
    with contextlib.closing(sqlite3.connect(db)) as con:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for col in con.execute(f'PRAGMA table_info("{table}")').fetchall():
                q = f'SELECT count(*) FROM "{table}" WHERE instr(CAST("{col[1]}" AS TEXT), ?) > 0'  # noqa: S608
                if con.execute(q, (needle,)).fetchone()[0]:
                    found.append(f"{table}.{col[1]}")
    return found


def test_a_restored_home_serves_the_same_champion_after_the_old_one_is_gone(source, tmp_path):
    b = source.backup
    assert b["champion"] == {MODEL: "2"} and b["ledger_entries"] == 3 and b["ledger_agrees"]
    assert {"mlflow.db", "ledger.db", "optuna.db"} <= set(b["databases"])
    assert b["repositories"]["data/ratchet"]["branches"] == source.branches
    assert b["repositories"]["data/ratchet"]["tags"] == source.tags
    with tarfile.open(source.archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert "home/run/admin-token" in names and "home/run/stack.json" not in names
    assert not [n for n in names if n.endswith(("-wal", "-shm", "-journal"))]
    assert manifest["home"] == str(source.home) and manifest["champion"] == {MODEL: "2"}
    assert manifest["ratchet_version"] and manifest["created_at"]
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    assert {"mlflow.db", "ratchet.yaml", "run/admin-token"} <= set(manifest["files"])
    assert any(f.startswith("mlartifacts/") and f.endswith("/MLmodel") for f in manifest["files"])

    shutil.rmtree(source.home)  # nothing below may read the old home
    new = tmp_path / "new-home"
    new.mkdir()  # an empty folder is a fine target
    out = cli("restore", str(source.archive), "--home", str(new))
    assert out["home"] == str(new.resolve()) and out["source_home"] == str(source.home)
    assert {"runs.artifact_uri", "experiments.artifact_location", "model_versions.storage_location",
            "logged_models.artifact_location"} <= set(out["rewritten"]["mlflow.db"])
    assert "trial_user_attributes.value_json" in out["rewritten"]["optuna.db"]
    for db in ("mlflow.db", "optuna.db"):
        assert texts_naming(new / db, str(source.home)) == [], db

    assert predictions(new) == source.predictions
    import mlflow

    assert mlflow.pyfunc.load_model(f"models:/{MODEL}/1") is not None  # every version's files came
    assert cli("--home", str(new), "history")["entries"] == source.history
    verified = cli("--home", str(new), "history", "--verify")
    assert verified["ok"] and verified["entries"] == 3
    assert cli("--home", str(new), "data", "fsck") == {"ok": True, "problems": []}
    assert cli("--home", str(new), "status")["champion"] == "2"

    repo = EmbeddedRepository(new / "data" / "ratchet")
    assert repo.list_branches() == source.branches and repo.list_tags() == source.tags
    assert repo.uncommitted("wip") == source.staged
    assert repo.get_object("wip", "notes/staged.txt") == b"staged, not committed"
    pd.testing.assert_frame_equal(repo.read_dataframe("main", "batches/2.parquet"), rows(50, 2))
    token = new / "run" / "admin-token"
    assert token.read_text() == TOKEN and token.stat().st_mode & 0o777 == 0o600
    assert not (new / "run" / "stack.json").exists()
    import optuna

    attrs = optuna.load_study(study_name="study", storage=Settings(home=new).optuna_url).trials[0].user_attrs
    assert Path(attrs["checkpoint"]) == new.resolve() / source.checkpoint.relative_to(source.home)
    assert Path(attrs["checkpoint"]).read_bytes() == b"a checkpoint"
    assert not list(tmp_path.glob(".*restore*"))


def ratchet(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RATCHET_DEBUG"}
    return subprocess.run([str(RATCHET), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_restore_refuses_a_folder_that_is_not_empty(source, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    one_line_error(ratchet("restore", str(source.archive), "--home", str(taken)), str(taken), "not empty")
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    one_line_error(ratchet("restore", str(source.archive)), "--home NEWHOME")
    one_line_error(ratchet("restore", str(tmp_path / "nope.tar.gz"), "--home", str(tmp_path / "n")), "nope.tar.gz")


def test_a_damaged_archive_is_one_line_naming_it_and_leaves_no_home(source, tmp_path):
    flipped = tmp_path / "flipped.tar.gz"
    original = source.archive.read_bytes()
    tar_bytes = gzip.decompress(original)
    for pos in range(len(original) // 2, len(original)):  # a flip that changes what the archive holds
        data = bytearray(original)
        data[pos] ^= 0x01  # (a bit of a Huffman table no code uses changes nothing)
        try:
            if gzip.decompress(bytes(data)) != tar_bytes:
                break
        except (OSError, EOFError, zlib.error):
            break
    flipped.write_bytes(bytes(data))
    one_line_error(ratchet("restore", str(flipped), "--home", str(tmp_path / "a")), str(flipped), "corrupt")
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob(".*restore*"))

    # a file changed inside an otherwise sound archive: named by its path in the home
    changed = tmp_path / "changed.tar.gz"
    with tarfile.open(source.archive) as src, tarfile.open(changed, "w:gz") as dst:
        for m in src:
            body = src.extractfile(m).read() if m.isfile() else None
            if m.name == "home/ratchet.yaml":
                body = body.replace(b"2", b"3")
            dst.addfile(m, io.BytesIO(body) if body is not None else None)
    line = one_line_error(ratchet("restore", str(changed), "--home", str(tmp_path / "b")), "ratchet.yaml", "SHA-256")
    assert str(changed) in line and not (tmp_path / "b").exists()

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(source.archive.read_bytes()[:-200])
    one_line_error(ratchet("restore", str(truncated), "--home", str(tmp_path / "c")), str(truncated))
    not_ours = tmp_path / "other.tar.gz"
    not_ours.write_bytes(gzip.compress(b"not a tar file at all" * 100))
    one_line_error(ratchet("restore", str(not_ours), "--home", str(tmp_path / "d")), str(not_ours))


def test_a_backup_refuses_a_ledger_and_registry_that_disagree(source, tmp_path):
    """The registry's champion moved by hand (no ledger entry): the copies disagree on every
    attempt, so the backup fails with one line naming both champions and writes no archive."""
    home = tmp_path / "home"
    cli("restore", str(source.archive), "--home", str(home))  # the module's home (another test removes it)
    registry = Registry(Settings(home=home), MODEL, EXPERIMENT)
    registry.activate()
    registry.set_alias("champion", "1")  # the ledger's last promotion says v2
    archive = tmp_path / "out" / "home.tar.gz"
    line = one_line_error(ratchet("--home", str(home), "backup", str(archive)), "disagree", "no archive written")
    assert "ledger v2" in line and "registry v1" in line, line
    assert not archive.exists() and not list(archive.parent.glob(".*")), list(archive.parent.iterdir())
    registry.set_alias("champion", "2")  # reconciled: the same home backs up
    assert cli("--home", str(home), "backup", str(archive))["champion"] == {MODEL: "2"}


def ledger_rows(db: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db)) as con:
        return con.execute("SELECT id, action, to_version, hash FROM ratchet_ledger ORDER BY id").fetchall()


@pytest.mark.slow
def test_a_backup_taken_while_another_process_writes_restores_consistent(tmp_path):
    """Ingest-like commits and merges, promotions (alias moves, then the ledger entry) and
    traffic entries from another process, all through the backups; about 40 s on two cores."""
    settings = build_home(tmp_path / "live")
    stop, progress = tmp_path / "stop", tmp_path / "progress.json"
    writer = subprocess.Popen([sys.executable, "-m", "tests.runtime.load_writer", str(settings.root), str(stop),
                               str(progress)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    archives = []
    try:
        deadline = time.monotonic() + 120
        while not (progress.exists() and json.loads(progress.read_text())["rounds"] >= 2):
            assert writer.poll() is None and time.monotonic() < deadline, writer.communicate()
            time.sleep(0.2)
        for k in range(3):
            archive = tmp_path / f"b{k}.tar.gz"
            r = ratchet("--home", str(settings.root), "backup", str(archive), "--json")
            assert r.returncode == 0, r.stderr
            archives.append((archive, json.loads(r.stdout)))
            time.sleep(0.5)
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    counts = json.loads(out)
    assert counts["rounds"] >= 4, counts  # the writer kept going through the backups

    live_ledger = ledger_rows(settings.root / "ledger.db")
    live = EmbeddedRepository(settings.data_dir / "ratchet")
    seen = []
    for k, (archive, backup) in enumerate(archives):
        home = tmp_path / f"restored-{k}"
        r = ratchet("restore", str(archive), "--home", str(home), "--json")
        assert r.returncode == 0, r.stderr
        repo = EmbeddedRepository(home / "data" / "ratchet")
        assert repo.fsck() == []
        for path in repo.list_objects("main"):
            repo.get_object("main", path)
        main = repo.resolve("main")
        assert live.merge_base(main, "main") == main  # main as it was then: an ancestor of main now
        assert set(repo.list_tags().items()) <= set(live.list_tags().items())
        restored = ledger_rows(home / "ledger.db")
        assert restored == live_ledger[: len(restored)] and len(restored) == backup["ledger_entries"]
        assert Ledger(Settings(home=home).ledger).verify().ok
        champion = Registry(Settings(home=home), MODEL, EXPERIMENT).alias("champion")
        by_ledger = [row[2] for row in restored if row[1] in ("promote", "rollback")][-1]
        assert backup["ledger_agrees"] and champion == by_ledger == backup["champion"][MODEL], (backup, restored[-3:])
        seen.append(len(restored))
    assert seen == sorted(seen) and seen[-1] > seen[0], seen  # each later backup saw more history
