"""`ratchet ingest`: good batches reach main, bad ones are rejected with exit code 2."""

from __future__ import annotations

import json

import pandas as pd

from tests.events import recorded_events


def _events(name: str, commit: str) -> list[dict]:
    """Events of this name about this commit, as the Prefect server recorded them."""
    return recorded_events(name, lambda e: e["resource"].get("ratchet.commit") == commit)


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
    assert len(_events("ratchet.data.published", out["commit"])) == 1


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
    assert _events("ratchet.data.rejected", out["commit"])
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


def _bad_batches(clean: pd.DataFrame, folder) -> dict[str, tuple[str, str | None]]:
    """rule -> (file, the column its message must name)."""
    out: dict[str, tuple[str, str | None]] = {}

    def write(name: str, df: pd.DataFrame | None = None, raw: bytes | None = None) -> str:
        path = folder / f"{name}.csv"
        if raw is not None:
            path.write_bytes(raw)
        else:
            df.to_csv(path, index=False)
        return str(path)

    header = ",".join(clean.columns).encode()
    out["file_empty"] = (write("empty", raw=b""), None)
    out["malformed_csv"] = (write("ragged", raw=header + b"\n1,2,3\n4,5,6,7,8,9,10,11,12,13,14\n"), None)
    out["encoding"] = (write("latin1", raw=header + b"\n" + "30,5e4,0.3,4,0,3,rent,caf\xe9,0".encode("latin-1")), None)
    out["no_rows"] = (write("header_only", raw=header + b"\n"), None)
    out["missing_column"] = (write("missing", clean.drop(columns=["income"])), "income")
    out["extra_column"] = (write("extra", clean.assign(zzz=1)), "zzz")
    bad_type = clean.astype({"age": object})
    bad_type.loc[3, "age"] = "forty"
    out["dtype"] = (write("dtype", bad_type), "age")
    nulls = clean.copy()
    nulls.loc[: len(nulls) // 3, "income"] = None
    out["null_share"] = (write("nulls", nulls), "income")
    out["out_of_range"] = (write("range", clean.assign(age=500)), "age")
    cats = clean.copy()
    cats.loc[0, "home_ownership"] = "castle"
    out["unknown_category"] = (write("category", cats), "home_ownership")
    out["single_class"] = (write("one_class", clean.assign(default=0)), "default")
    out["duplicate_rows"] = (write("dups", pd.concat([clean.head(1)] * 200, ignore_index=True)), None)
    return out


def test_every_kind_of_bad_batch_is_rejected_and_main_never_moves(cli, home, demo_data, tmp_path):
    import yaml

    from ratchet.core.settings import Settings

    _init(cli, demo_data)
    assert cli("ingest", demo_data.clean[0], "--json").exit_code == 0
    clean = pd.read_csv(demo_data.clean[1])
    cases = _bad_batches(clean, tmp_path)
    for rule, (path, column) in cases.items():
        out, _ = _rejected(cli, path)
        hits = [v for v in out["violations"] if v["rule"] == rule]
        assert hits, f"{rule}: got {out['violations']}"
        if column:
            assert any(column in v["message"] for v in hits), hits

    schema_path = Settings().schema_path  # a size limit below the file's size
    schema = yaml.safe_load(schema_path.read_text())
    schema_path.write_text(yaml.safe_dump({**schema, "max_file_mb": 0.01}))
    out, _ = _rejected(cli, demo_data.clean[1])
    assert [v["rule"] for v in out["violations"]] == ["file_too_large"]


def _repo_state(home) -> tuple[str, dict[str, str]]:
    from ratchet.runtime.context import load_context

    repo = load_context(home=str(home)).repo
    return repo.resolve("main"), repo.list_branches()


def test_the_same_batch_twice_is_a_duplicate_naming_the_first_commit(cli, home, demo_data, tmp_path):
    _init(cli, demo_data)
    first = json.loads(cli("ingest", demo_data.clean[0], "--json").stdout)
    assert first["status"] == "published"
    before = _repo_state(home)

    r = cli("ingest", demo_data.clean[0], "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["status"] == "duplicate" and out["commit"] == first["commit"]
    assert out["duplicate_of"]["batch_id"] == first["batch_id"]
    assert out["duplicate_of"]["commit"] == first["commit"]
    assert _repo_state(home) == before  # nothing written, no branch created
    assert len(_events("ratchet.data.duplicate", first["commit"])) == 1
    assert len(_events("ratchet.data.published", first["commit"])) == 1  # no retraining is asked for

    # the same rows under another name, as Parquet, rows shuffled: still the same content
    df = pd.read_csv(demo_data.clean[0]).sample(frac=1.0, random_state=4)
    other = tmp_path / "re-export.parquet"
    df.to_parquet(other, index=False)
    human = cli("ingest", str(other))
    assert human.exit_code == 0, human.output
    assert f"as batch {first['batch_id']}, published in commit {first['commit'][:12]}" in human.stdout
    assert "duplicate" in human.stdout and _repo_state(home) == before
