"""The score flow: a file and a data commit scored in chunks by the champion or a named version,
one prediction per input row with its row id, the model version and the input's data commit,
committed to the data repository under predictions/ and written to --out. Real Prefect (test
harness), MLflow on SQLite, the embedded data repository, a real tiny Lightning model."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from ratchet.demo.synthetic import DEMO_TARGET
from ratchet.runtime.context import load_context
from ratchet.runtime.home import init_home
from ratchet.runtime.options import RunOptions
from ratchet.serving.scoring import PREDICTIONS_BRANCH
from tests.conftest import CONFIG_FILES
from tests.serving.helpers import train_tiny_predictor


@pytest.fixture(scope="module")
def scoring_world(tmp_path_factory, demo_data):
    """A home with one published batch, v1 champion and v2 (another fit) registered."""
    from flows.ingest import ingest_flow

    home = tmp_path_factory.mktemp("score-home")
    ctx = load_context(CONFIG_FILES, home=str(home))
    init_home(ctx, demo_data.clean[0], demo_data.target)
    options = RunOptions(config_files=CONFIG_FILES, home=str(home))
    ingest_flow(demo_data.clean[0], options=options)
    ctx.registry.activate()
    versions = []
    for seed in (3, 4):
        predictor, df = train_tiny_predictor(seed=seed, rows=600, epochs=1)
        with mlflow.start_run(run_name=f"seed {seed}"):
            uri = ctx.registry.log_predictor(predictor, df.drop(columns=[DEMO_TARGET]).head(5))
        versions.append(ctx.registry.register(uri, {"data_commit": "test"}))
    ctx.registry.set_alias("champion", versions[0])
    return ctx, options, versions


def test_scoring_a_file_in_chunks_gives_one_prediction_per_row(scoring_world, demo_data, tmp_path):
    from flows.score import score_flow

    ctx, options, (v1, v2) = scoring_world
    frame = pd.read_csv(demo_data.clean[1]).drop(columns=[DEMO_TARGET])
    src = tmp_path / "incoming.csv"
    frame.to_csv(src, index=False)
    out = tmp_path / "out" / "predictions.csv"
    result = score_flow(path=str(src), out=str(out), chunk_rows=300, options=options).to_dict()

    n = len(frame)
    assert result["rows"] == n and result["chunks"] == -(-n // 300) and result["model_version"] == v1
    assert result["data_commit"].startswith("sha256:") and result["input"]["kind"] == "file"
    written = pd.read_csv(out)
    assert list(written["row_id"]) == list(range(n))  # one per input row, in order
    assert set(written["model_version"].astype(str)) == {v1}
    assert set(written["data_commit"]) == {result["data_commit"]}
    proba = written.filter(like="proba_")
    assert proba.shape[1] >= 2 and np.allclose(proba.sum(axis=1), 1.0, atol=1e-4)
    # the same as the champion's predict on the whole frame
    whole = ctx.registry.load_predictor("champion").predict_proba(frame)
    assert np.allclose(proba.to_numpy(), whole, atol=1e-5)

    # committed on the predictions branch (main untouched), with the profile and the summary
    assert result["repo_branch"] == PREDICTIONS_BRANCH
    assert ctx.repo.resolve(PREDICTIONS_BRANCH) == result["repo_commit"]
    stored = ctx.repo.read_dataframe(result["repo_commit"], result["repo_path"])
    assert len(stored) == n and list(stored["row_id"]) == list(range(n))
    assert not ctx.repo.list_objects(ctx.cfg.data.main_branch, "predictions/")
    base = result["repo_path"].rsplit("/", 1)[0]
    summary = json.loads(ctx.repo.get_object(result["repo_commit"], f"{base}/summary.json"))
    assert summary["model_version"] == v1 and summary["summary"]["columns"]["prediction"]["count"] == n
    assert ctx.repo.get_object(result["repo_commit"], f"{base}/profile.bin")
    assert not list((ctx.settings.root / "scoring").glob("*.parquet"))  # the local copy was moved out


def test_scoring_a_data_commit_with_a_named_version(scoring_world, tmp_path):
    from flows.score import score_flow

    ctx, options, (v1, v2) = scoring_world
    main = ctx.repo.resolve(ctx.cfg.data.main_branch)
    out = tmp_path / "p.parquet"
    result = score_flow(ref=main, version=v2, out=str(out), options=options).to_dict()

    batches = [p for p in ctx.repo.list_objects(main, ctx.cfg.data.batch_prefix) if p.endswith(".parquet")]
    n = sum(len(ctx.repo.read_dataframe(main, p)) for p in batches)
    written = pd.read_parquet(out)
    assert result["rows"] == n == len(written) and result["data_commit"] == main
    assert set(written["model_version"].astype(str)) == {v2} and set(written["data_commit"].astype(str)) == {main}
    assert written["row_id"].is_unique and written["row_id"].max() == n - 1
    # each run is a commit of its own on the predictions branch
    assert ctx.repo.resolve(PREDICTIONS_BRANCH) == result["repo_commit"]
    assert len(ctx.repo.list_objects(PREDICTIONS_BRANCH, "predictions/")) >= 6  # two runs x 3 files


def test_scoring_refuses_an_input_without_the_model_columns(scoring_world, tmp_path):
    from flows.score import score_flow

    _, options, _ = scoring_world
    src = tmp_path / "bad.csv"
    pd.DataFrame({"x": [1, 2]}).to_csv(src, index=False)
    with pytest.raises(ValueError, match="lacks the model's feature column"):
        score_flow(path=str(src), options=options)


def test_ratchet_score_command(scoring_world, demo_data, tmp_path, cli):
    ctx, options, (v1, _) = scoring_world
    out = tmp_path / "cli.parquet"
    r = cli("--home", options.home, "score", demo_data.clean[1], "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.output.strip().splitlines()[-1])
    assert result["model_version"] == v1 and result["rows"] == len(pd.read_parquet(out))
    assert cli("--home", options.home, "score").exit_code == 1  # neither a file nor --ref
