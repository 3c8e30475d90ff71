"""The feature side of the preprocessing: ignored columns never reach the model, a datetime
feature reaches it as calendar parts, and categories outside the schema share one bucket."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ratchet.core.schema import ColumnSpec, Schema, TargetSpec
from ratchet.data.checks import check_batch
from ratchet.data.schema_inference import infer_schema
from ratchet.training.model.preprocess import OTHER, build_preprocessor, frame_for_model

SCHEMA = Schema(
    columns=[
        ColumnSpec(name="at", dtype="datetime", datetime_parts=["month", "dayofweek", "hour"], max_null_share=0.1),
        ColumnSpec(name="city", dtype="category", categories=["lima", "oslo"], other_bucket=True),
        ColumnSpec(name="x", dtype="float"),
        ColumnSpec(name="note", dtype="text", role="ignore", ignore_reason="free text"),
    ],
    target=TargetSpec(name="y", classes=[0, 1]),
)


def test_frame_for_model_derives_parts_and_drops_ignored_columns():
    raw = pd.DataFrame(
        {
            "at": ["2024-03-04T08:30:00", "2024-12-29 23:05:00+01:00", None, "2024-07-01"],
            "city": ["oslo", "pune", None, "lima"],
            "x": [1.0, 2.0, 3.0, 4.0],
            "note": ["a", "b", "c", "d"],
        }
    )
    for df in (raw, check_batch(raw.assign(y=[0, 1, 0, 1]), SCHEMA)[0]):  # strings, or as ingest types them
        f = frame_for_model(df, SCHEMA)
        assert list(f.columns) == ["at.month", "at.dayofweek", "at.hour", "city", "x"]
        assert f.loc[0, ["at.month", "at.dayofweek", "at.hour"]].tolist() == [3.0, 0.0, 8.0]  # a Monday
        assert f.loc[1, ["at.month", "at.dayofweek", "at.hour"]].tolist() == [12.0, 6.0, 22.0]  # UTC
        assert f.loc[2, ["at.month", "at.hour"]].isna().all()
        assert f["city"].tolist()[:2] == ["oslo", OTHER] and pd.isna(f.loc[2, "city"])


def test_the_preprocessor_sees_the_parts_and_learns_the_other_bucket():
    rng = np.random.default_rng(0)
    n = 200
    at = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, n), unit="h")
    df = pd.DataFrame(
        {
            "at": at.strftime("%Y-%m-%dT%H:%M:%S"),
            "city": rng.choice(["lima", "oslo", "pune", "rome"], n),  # two past the top values
            "x": rng.normal(size=n),
            "note": "free",
        }
    )
    pre = build_preprocessor(SCHEMA)
    x = pre.fit_transform(frame_for_model(df, SCHEMA))
    names = list(pre.get_feature_names_out())
    assert names[:4] == ["num__at.month", "num__at.dayofweek", "num__at.hour", "num__x"]
    assert f"cat__city_{OTHER}" in names and not any("note" in n for n in names)
    hour = x[:, names.index("num__at.hour")]
    assert np.corrcoef(hour, at.hour)[0, 1] == pytest.approx(1.0)  # scaled, the same order


def test_a_label_carried_by_the_hour_is_learnt_from_the_raw_timestamp():
    """Rows whose label is only in the time of day: a model that sees the derived hour
    learns it; the raw column alone would give it nothing (a string)."""
    from ratchet.core.config import TrainConfig
    from ratchet.training.model.fit import fit

    rng = np.random.default_rng(1)
    n = 1200
    at = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 200 * 24 * 60, n), unit="min")
    df = pd.DataFrame(
        {"at": at.strftime("%Y-%m-%dT%H:%M:%S"), "noise": rng.normal(size=n), "y": (at.hour >= 12).astype(int)}
    )
    schema = infer_schema(df.iloc[:300], "y")
    assert "hour" in schema.column("at").parts
    typed, violations = check_batch(df, schema)
    assert not [v for v in violations if v.fatal]
    result = fit(typed.iloc[:900], typed.iloc[900:1000], schema, TrainConfig(max_epochs=8, seed=3), progress=False)
    test = df.iloc[1000:]  # as a client sends it: the ISO strings
    accuracy = np.mean(np.asarray(result.predictor.predict(test)) == test["y"].to_numpy())
    assert accuracy > 0.8, accuracy  # 0.91 measured; without the hour part: 0.53
