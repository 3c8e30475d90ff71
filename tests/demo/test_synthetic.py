import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ratchet.demo.synthetic import (
    CATEGORICAL_FEATURES,
    DEMO_TARGET,
    FEATURES,
    NUMERIC_FEATURES,
    generate_batch,
    write_batch,
)

ROWS = 3000
SEED = 11


def _model():
    prep = make_column_transformer(
        (StandardScaler(), NUMERIC_FEATURES), (OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_FEATURES)
    )
    return make_pipeline(prep, LogisticRegression(max_iter=1000))


def _xy(df):
    return df[FEATURES], df[DEMO_TARGET]


def test_shape_and_types():
    df = generate_batch(0, 500, SEED)
    assert list(df.columns) == FEATURES + [DEMO_TARGET]
    assert len(df) == 500
    assert set(df[DEMO_TARGET].unique()) == {0, 1}
    assert df[DEMO_TARGET].dtype.kind == "i"
    assert df["age"].dtype.kind == "i" and df["credit_lines"].dtype.kind == "i"
    assert df["income"].dtype.kind == "f"
    assert not df.isna().any().any()
    assert df["age"].between(18, 90).all()
    assert df["debt_ratio"].between(0, 1).all()


def test_deterministic_per_seed_and_batch():
    a = generate_batch(3, 400, SEED, data_drift_at=2, concept_drift_at=3)
    b = generate_batch(3, 400, SEED, data_drift_at=2, concept_drift_at=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(generate_batch(4, 400, SEED, data_drift_at=2, concept_drift_at=3))
    assert not a.equals(generate_batch(3, 400, SEED + 1, data_drift_at=2, concept_drift_at=3))


def test_drift_only_from_its_batch():
    # before the drift index a batch is exactly the undrifted one
    pd.testing.assert_frame_equal(
        generate_batch(2, 300, SEED, data_drift_at=3, concept_drift_at=3), generate_batch(2, 300, SEED)
    )


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"data_drift_at": 0},
        {"concept_drift_at": 0},
        {"data_drift_at": 0, "concept_drift_at": 0},
    ],
)
def test_class_balance(kw):
    for i in range(3):
        share = generate_batch(i, 1500, SEED, **kw)[DEMO_TARGET].mean()
        assert 0.3 <= share <= 0.7, (kw, i, share)


def test_data_drift_moves_income_and_age():
    clean = pd.concat([generate_batch(i, 1500, SEED) for i in range(2)])
    drifted = pd.concat([generate_batch(i, 1500, SEED, data_drift_at=0, shift=1.0) for i in range(2)])
    assert np.log(drifted["income"]).mean() - np.log(clean["income"]).mean() > 0.3  # ~1 sd = 0.45
    assert clean["age"].mean() - drifted["age"].mean() > 8  # ~1 sd = 12, less after clipping at 18
    # other features keep their distribution
    assert abs(drifted["debt_ratio"].mean() - clean["debt_ratio"].mean()) < 0.02


def test_concept_drift_breaks_old_model_and_new_data_recovers():
    old = generate_batch(0, ROWS, SEED, concept_drift_at=5)
    model = _model().fit(*_xy(old))
    pre = generate_batch(1, ROWS, SEED, concept_drift_at=5)
    post = generate_batch(6, ROWS, SEED, concept_drift_at=5)
    acc_pre, acc_post = model.score(*_xy(pre)), model.score(*_xy(post))
    assert 0.82 <= acc_pre <= 0.92, acc_pre
    assert acc_post <= 0.65, acc_post

    new_model = _model().fit(*_xy(generate_batch(5, ROWS, SEED, concept_drift_at=5)))
    assert new_model.score(*_xy(post)) >= 0.82


def test_data_drift_alone_keeps_the_rule():
    model = _model().fit(*_xy(generate_batch(0, ROWS, SEED)))
    drifted = generate_batch(1, ROWS, SEED, data_drift_at=1)
    assert model.score(*_xy(drifted)) >= 0.8


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_batch_round_trip(tmp_path, suffix):
    df = generate_batch(0, 200, SEED)
    path = write_batch(df, tmp_path / "sub" / f"b{suffix}")
    back = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


def test_write_batch_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="unsupported suffix"):
        write_batch(generate_batch(0, 10, SEED), tmp_path / "b.xlsx")
