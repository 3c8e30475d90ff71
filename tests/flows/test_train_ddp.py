"""DDP (two CPU processes, gloo) launched from inside the train flow."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import optuna

from ratchet.runtime.options import RunOptions
from ratchet.training.window import training_data
from tests.conftest import CONFIG_FILES
from tests.training.helpers import flow_runs_with, home_with_data


def test_ddp_inside_the_flow_runs_training_per_rank_and_the_flow_body_once(home):
    from flows.train import train_flow

    ctx = home_with_data(home, CONFIG_FILES, batches=2, rows=800)
    out = train_flow(
        trials=1,
        options=RunOptions(
            config_files=CONFIG_FILES, home=str(home),
            overrides={"train": {"accelerator": "cpu", "devices": 2, "max_epochs": 10}},
        ),
    )

    # one flow run: the ranks ran training only, not the flow again
    runs = flow_runs_with(home, "train")
    assert len(runs) == 1 and runs[0].state.is_completed()

    # two training processes, neither of them this one, with equal work per epoch
    study = optuna.load_study(study_name=out.study, storage=ctx.settings.optuna_url)
    (trial,) = study.trials
    ranks = trial.user_attrs["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and {r["world_size"] for r in ranks} == {2}
    assert len({r["pid"] for r in ranks} | {os.getpid()}) == 3
    assert ranks[0]["train_batches_per_epoch"] == ranks[1]["train_batches_per_epoch"] >= 1
    assert ranks[0]["train_rows_per_epoch"] == ranks[1]["train_rows_per_epoch"]
    data = training_data(ctx.repo, out.data_commit, ctx.cfg, schema=ctx.schema)
    assert 0 <= 2 * ranks[0]["train_rows_per_epoch"] - len(data.train) < 2  # each rank half the rows
    # Lightning did not slip a DistributedSampler in: the loader keeps its iterable's sampler
    assert {r["sampler"] for r in ranks} == {"_InfiniteConstantSampler"}

    # the metrics came back to this process, and the predictor built here holds the
    # trained weights: its test accuracy (computed here) is well above the majority class
    m = out.metrics
    majority = max(m["test_positive_share"], 1 - m["test_positive_share"])
    assert m["test_accuracy"] > majority + 0.1, m
    assert m["best_epochs"] >= 1 and np.isfinite(m["best_val_loss"])

    # the registered model is that predictor
    mlflow.set_tracking_uri(ctx.settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{ctx.cfg.model_name}@challenger")
    served = model.predict(data.test[ctx.schema.feature_names])
    truth = data.test[ctx.schema.target.name].astype(str).to_numpy()
    assert np.mean(served["prediction"].astype(str).to_numpy() == truth) == m["test_accuracy"]
