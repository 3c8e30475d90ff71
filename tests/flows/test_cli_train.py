"""`ratchet train / evaluate / promote / rollback / lineage` through the CLI and Prefect."""

from __future__ import annotations

import json

import mlflow
import pandas as pd

from ratchet.core.settings import Settings


def test_train_evaluate_promote_lineage(cli, home, demo_data):
    assert cli("init", "--schema-from", demo_data.clean[0], "--target", demo_data.target).exit_code == 0
    for path in demo_data.clean:
        assert cli("ingest", path, "--json").exit_code == 0

    r = cli("train", "--trials", "2", "--json")
    assert r.exit_code == 0, r.output
    trained = json.loads(r.stdout)
    assert trained["model_version"] == "1"
    assert len(trained["data_commit"]) == 64
    assert trained["metrics"]["test_accuracy"] > 0.75

    # the registered model predicts on raw rows: preprocessing is inside
    mlflow.set_tracking_uri(Settings().tracking_uri)
    model = mlflow.pyfunc.load_model("models:/ratchet-classifier@challenger")
    raw = pd.read_csv(demo_data.clean[0]).drop(columns=[demo_data.target]).head(4)
    raw.loc[0, raw.columns[0]] = None  # a missing value in an int column is imputed, not refused
    out = model.predict(raw)
    assert len(out) == 4 and set(out["prediction"]) <= {0, 1}

    r = cli("evaluate", "--json")
    assert r.exit_code == 0, r.output
    decision = json.loads(r.stdout)
    assert decision["decision"] == "promote" and decision["champion"] is None
    assert decision["evidence"]["data_commit"] == trained["data_commit"]

    r = cli("promote", "--json")
    assert json.loads(r.stdout)["champion"] == "1"

    r = cli("rollback", "--json")
    assert r.exit_code == 1
    assert "nothing to roll back to" in json.loads(r.stdout)["error"]

    lineage = json.loads(cli("lineage", "1", "--json").stdout)
    assert lineage["data_commit"] == trained["data_commit"]
    assert lineage["mlflow_run"] == trained["run_id"]
    assert lineage["code_version"] and lineage["config_hash"] and lineage["optuna_study"]
    assert "champion" in lineage["aliases"]
    assert lineage["data_profile"]["age"]["rows"] == sum(len(pd.read_csv(p)) for p in demo_data.clean)

    status = json.loads(cli("status", "--json").stdout)
    assert {"champion", "challenger", "traffic", "data", "drift"} <= set(status)
    assert status["champion"] == "1" and status["challenger"] is None
