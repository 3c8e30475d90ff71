"""``ratchet data`` commands through typer's CliRunner, on an embedded repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ratchet_cli.data import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("{}\n")
    monkeypatch.setenv("RATCHET_CONFIG", str(cfg))
    monkeypatch.setenv("RATCHET_HOME", str(tmp_path / "home"))


def _json(*args: str, code: int = 0) -> dict:
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr)
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stdout  # exactly one JSON object
    return json.loads(lines[0])


def _stage(branch: str, path: str, data: bytes) -> None:
    from ratchet_cli.data import open_configured_repository

    open_configured_repository().put_object(branch, path, data)


def test_branch_commit_log_diff_show_tag() -> None:
    main = _json("branch", "list")
    assert main["main"] == "main" and list(main["branches"]) == ["main"]
    created = _json("branch", "create", "feat", "--from", "main")
    assert created["commit"] == main["branches"]["main"]
    _stage("feat", "a.txt", b"hello")
    c = _json("commit", "feat", "-m", "add a", "--meta", "rows=1")
    shown = _json("show", c["commit"])
    assert shown["commit"]["message"] == "add a"
    assert shown["commit"]["metadata"] == {"rows": "1"}
    assert shown["objects"] == ["a.txt"]
    obj = _json("show", "feat", "a.txt")
    assert obj["text"] == "hello" and obj["size"] == 5
    raw = runner.invoke(app, ["show", "feat", "a.txt"])
    assert raw.exit_code == 0 and raw.stdout == "hello"
    log = _json("log", "feat")
    assert [x["id"] for x in log["commits"]][0] == c["commit"]
    d = _json("diff", "main", "feat")
    assert d["changes"] == [{"path": "a.txt", "type": "added"}]
    t = _json("tag", "v1", "--ref", "feat")
    assert t["commit"] == c["commit"]
    assert _json("tag")["tags"] == {"v1": c["commit"]}
    human = runner.invoke(app, ["log", "feat"])
    assert human.exit_code == 0 and "add a" in human.stdout


def test_merge_conflict_strategies_and_delete() -> None:
    _json("branch", "create", "feat")
    _stage("main", "p", b"base")
    _json("commit", "main", "-m", "base")
    _json("branch", "create", "other")
    _stage("other", "p", b"other")
    _json("commit", "other", "-m", "other")
    _stage("main", "p", b"main")
    _json("commit", "main", "-m", "main")
    err = _json("merge", "other", "main", code=1)
    assert err["type"] == "MergeConflict" and err["paths"] == ["p"]
    ok = _json("merge", "other", "main", "--strategy", "source-wins", "-m", "take other")
    assert _json("show", ok["commit"])["commit"]["message"] == "take other"
    assert _json("show", "main", "p")["text"] == "other"
    assert _json("branch", "delete", "feat")["deleted"] == "feat"
    assert "feat" not in _json("branch", "list")["branches"]


def test_errors_and_fsck() -> None:
    err = _json("log", "no-such-branch", code=1)
    assert err["type"] == "RefNotFound"
    assert _json("branch", "create", "bad name", code=1)["type"] == "InvalidName"
    assert _json("branch", "delete", "main", code=1)["error"]
    assert _json("commit", "main", "-m", "empty", code=1)["type"] == "NothingToCommit"
    assert _json("fsck") == {"ok": True, "problems": []}
    from ratchet_cli.data import open_configured_repository

    repo = open_configured_repository()
    repo.put_object("main", "x", b"x")
    repo.commit("main", "x")
    victim = next(p for p in (repo.root / "objects").rglob("*") if p.is_file())  # type: ignore[attr-defined]
    victim.write_bytes(b"rot")
    bad = _json("fsck", code=1)
    assert not bad["ok"] and bad["problems"]
