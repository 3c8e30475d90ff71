"""`ratchet ingest`: good batches reach main, bad ones are rejected with exit code 2."""

from __future__ import annotations

import json

import pandas as pd


def _init(cli, demo_data):
    r = cli("init", "--schema-from", demo_data.clean[0], "--target", demo_data.target, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_good_batch_is_published(cli, home, demo_data):
    before = _init(cli, demo_data)["main"]
    r = cli("ingest", demo_data.clean[0], "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["status"] == "published"
    assert out["commit"] != before
    assert out["violations"] == []
    assert out["branch"].startswith("ingest-")
    status = json.loads(cli("status", "--json").stdout)
    assert status["data"] == out["commit"]


def _rejected(cli, path):
    main_before = json.loads(cli("status", "--json").stdout)["data"]
    r = cli("ingest", str(path), "--json")
    assert r.exit_code == 2, r.output
    out = json.loads(r.stdout)
    assert out["status"] == "rejected"
    assert json.loads(cli("status", "--json").stdout)["data"] == main_before
    return out, r


def test_missing_column_is_rejected(cli, home, demo_data, tmp_path):
    _init(cli, demo_data)
    df = pd.read_csv(demo_data.clean[1]).drop(columns=["income"])
    path = tmp_path / "missing.csv"
    df.to_csv(path, index=False)
    out, r = _rejected(cli, path)
    assert any(v["column"] == "income" and v["rule"] for v in out["violations"])
    assert "income" in r.stderr


def test_string_in_numeric_column_is_rejected(cli, home, demo_data, tmp_path):
    _init(cli, demo_data)
    df = pd.read_csv(demo_data.clean[1])
    df["age"] = df["age"].astype(object)
    df.loc[3, "age"] = "forty"
    path = tmp_path / "bad_type.csv"
    df.to_csv(path, index=False)
    out, r = _rejected(cli, path)
    bad = [v for v in out["violations"] if v["column"] == "age"]
    assert bad and "forty" in bad[0]["message"]
    assert "age" in r.stderr
