"""Regression: a one-output head on a standardised target, numbers out, RMSE/MAE/R² tracked."""

from __future__ import annotations

import pickle
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from ratchet.core.config import load_config
from ratchet.data.schema_inference import infer_schema
from ratchet.training import summary
from ratchet.training.model.fit import fit
from ratchet.training.model.module import TabularMLP
from ratchet.training.model.pyfunc import RatchetPyfunc
from ratchet.training.model.tune import tune
from ratchet.training.search import test_metrics as score_on_test
from ratchet.training.window import TrainingData, split_frame
from tests.conftest import CONFIG_FILES

TARGET = "target"


@pytest.fixture(scope="module")
def diabetes():
    """load_diabetes (442 rows, a continuous target of 25-346) split, and a config that fits it in seconds."""
    cfg = load_config([Path(f) for f in CONFIG_FILES])
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_epochs": 25, "batch_size": 32})})
    df = load_diabetes(as_frame=True).frame
    schema = infer_schema(df, TARGET)
    train, val, test = split_frame(df, 0.15, 0.2, seed=1)
    return cfg, schema, train, val, test


@pytest.fixture(scope="module")
def fitted(diabetes):
    cfg, schema, train, val, _ = diabetes
    return fit(train, val, schema, cfg.train, progress=False)


def test_a_regression_fit_predicts_numbers_with_finite_metrics(diabetes, fitted):
    cfg, schema, train, val, test = diabetes
    pred = fitted.predictor.predict(test)
    assert isinstance(pred, np.ndarray) and pred.dtype == np.float64 and pred.shape == (len(test),)
    data = TrainingData("c0", ["b0"], train, val, test)
    m = score_on_test(fitted.predictor, data, schema)
    assert set(m) == {"test_rmse", "test_mae", "test_r2", "test_rows"} and m["test_rows"] == len(test)
    assert all(np.isfinite(v) for v in m.values())
    assert m["test_r2"] > 0.2  # a linear model reaches ~0.45 on this set; predicting the mean, 0
    assert m["test_mae"] <= m["test_rmse"]
    assert fitted.predictor.task == "regression" and fitted.predictor.classes == []


def test_the_target_is_standardised_for_training_and_not_at_prediction(diabetes, fitted):
    _, _, train, _, test = diabetes
    mean, sd = fitted.predictor.target_scale
    assert mean == pytest.approx(train[TARGET].mean()) and sd == pytest.approx(train[TARGET].std(ddof=0))
    # the loss is on the unit scale; predictions are in the target's units (visits, dollars, ...)
    assert fitted.metrics["val_loss"] < 2.0
    pred = fitted.predictor.predict(test)
    assert abs(pred.mean() - mean) < 0.5 * sd and pred.std() > 0.3 * sd
    raw = fitted.predictor.outputs(test)
    assert raw.shape == (len(test), 1)
    np.testing.assert_allclose(pred, raw[:, 0].astype(np.float64) * sd + mean, rtol=1e-12)


def test_the_predictor_round_trips_and_the_pyfunc_returns_numbers(diabetes, fitted):
    _, _, _, _, test = diabetes
    clone = pickle.loads(pickle.dumps(fitted.predictor))
    np.testing.assert_array_equal(clone.predict(test), fitted.predictor.predict(test))
    assert clone.target_scale == fitted.predictor.target_scale
    frame = RatchetPyfunc._frame(fitted.predictor, test.drop(columns=[TARGET]))
    assert list(frame.columns) == ["prediction"] and frame["prediction"].dtype == np.float64
    np.testing.assert_array_equal(frame["prediction"].to_numpy(), fitted.predictor.predict(test))
    with pytest.raises(TypeError, match="use predict"):
        fitted.predictor.predict_proba(test)


def test_huber_loss_is_a_choice(diabetes, fitted):
    cfg, schema, train, val, test = diabetes
    huber = fit(train, val, schema, cfg.train.model_copy(update={"regression_loss": "huber"}), progress=False)
    assert type(huber.predictor.module.loss).__name__ == "HuberLoss"
    assert type(fitted.predictor.module.loss).__name__ == "MSELoss"
    pred = huber.predictor.predict(test)
    assert np.all(np.isfinite(pred)) and not np.allclose(pred, fitted.predictor.predict(test))


def test_the_regression_head_has_one_output():
    with pytest.raises(ValueError, match="one output"):
        TabularMLP(n_features=3, n_classes=2, task="regression")
    with pytest.raises(ValueError, match="regression_loss must be"):
        TabularMLP(n_features=3, n_classes=1, task="regression", regression_loss="l1")


def test_a_missing_target_value_is_named(diabetes):
    cfg, schema, train, val, _ = diabetes
    broken = train.copy()
    broken.loc[0, TARGET] = np.nan
    with pytest.raises(ValueError, match="1 missing or non-numeric"):
        fit(broken, val, schema, cfg.train, progress=False)


def test_optuna_minimises_the_validation_loss(diabetes, tmp_path):
    cfg, schema, train, val, _ = diabetes
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("regression-tune")  # not an experiment id left by an earlier test's store
    with mlflow.start_run():
        out = tune(train, val, schema, cfg, storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="reg",
                   trials=2, progress=False)
    values = [t.value for t in out.study.trials if t.value is not None]
    assert out.best_value == min(values) and np.isfinite(out.best_value)
    assert out.best.predictor.predict(val).dtype == np.float64


def test_the_summary_shows_regression_metrics():
    from ratchet.training.search import TrainedModel

    trained = TrainedModel(
        run_id="r", predictor=None, data_commit="c", batches=["b"], window_batches=1, config_hash="h",
        study_name="s", best_trial=0, best_params={},
        metrics={"test_rmse": 54.1, "test_mae": 43.0, "test_r2": 0.47, "best_val_loss": 0.6},
    )
    md = summary.render("m", trained, "1")
    assert "| test RMSE | 54.1000 |" in md and "| test MAE | 43.0000 |" in md and "| test R² | 0.4700 |" in md
    assert "accuracy" not in md
    assert summary.headline(trained.metrics) == "test RMSE 54.1000, R² 0.4700"
    assert summary.headline({"test_accuracy": 0.9}) == "test accuracy 0.9000"


def test_a_classification_frame_is_unchanged_by_regression():
    # the classifier's pyfunc frame: prediction plus one probability column per class
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch

    cfg = load_config([Path(f) for f in CONFIG_FILES])
    df = generate_batch(0, 600, seed=3)
    schema = infer_schema(df, DEMO_TARGET)
    train, val, test = split_frame(df, 0.15, 0.2, seed=1)
    cfg_train = cfg.train.model_copy(update={"max_epochs": 1})
    predictor = fit(train, val, schema, cfg_train, progress=False).predictor
    frame = RatchetPyfunc._frame(predictor, test)
    assert list(frame.columns) == ["prediction", "proba_0", "proba_1"]
    assert predictor.task == "binary" and predictor.target_scale is None
    assert "task" not in predictor.module_args  # the classifier's arguments as before
    assert isinstance(predictor.predict(test), list)
    pd.testing.assert_index_equal(frame.index, test.index)
