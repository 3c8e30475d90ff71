"""A study continued by a later call returns its best trial's model, wherever it was trained."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np

from ratchet.core.config import load_config
from ratchet.data.schema_inference import infer_schema
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
from ratchet.training.model.tune import tune
from ratchet.training.window import split_frame
from tests.conftest import CONFIG_FILES


def test_a_finished_study_returns_its_best_model_from_file_or_trained_again(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # no database to migrate for this test
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    mlflow.set_experiment("continue")
    cfg = load_config([Path(f) for f in CONFIG_FILES])
    df = generate_batch(0, 1500, seed=3)
    schema = infer_schema(df, DEMO_TARGET)
    train, val, _ = split_frame(df, 0.15, 0.2, seed=1)
    common = dict(storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="s", trials=1, progress=False)

    first = tune(train, val, schema, cfg, checkpoint_root=tmp_path / "ckpt", **common)
    assert first.ran == [0] and first.best_trial == 0
    proba = first.best.predictor.predict_proba(val)

    # the study holds its trial already: nothing runs, the model comes from the trial's file
    again = tune(train, val, schema, cfg, checkpoint_root=tmp_path / "ckpt", **common)
    assert again.ran == [] and again.best_trial == 0 and again.n_finished == 1
    np.testing.assert_array_equal(again.best.predictor.predict_proba(val), proba)
    assert again.best.metrics["val_loss"] == first.best.metrics["val_loss"] == again.best_value

    # the file out of reach (another machine's disk): trained again from its parameters, the same model
    Path(first.study.trials[0].user_attrs["predictor"]).unlink()
    third = tune(train, val, schema, cfg, checkpoint_root=None, **common)
    assert third.ran == [] and third.best_trial == 0
    np.testing.assert_allclose(third.best.predictor.predict_proba(val), proba, rtol=0, atol=1e-6)
