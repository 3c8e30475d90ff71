"""Column roles (feature / ignore, with the reason), overrides, top-K categories and
validation by share: unseen categories and out-of-range values reject a batch only past
their share limit; fewer are warnings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ratchet.core.schema import ColumnSpec, Schema, TargetSpec, load_schema
from ratchet.data.checks import BatchRejected, check_batch, over_limit, validate_file
from ratchet.data.schema_inference import infer_schema
from ratchet.runtime.home import init_home

N = 300


def _messy(n: int = N, seed: int = 0) -> pd.DataFrame:
    """As a passenger list arrives from CSV: every cell a string."""
    rng = np.random.default_rng(seed)
    first = ["Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu"]
    cities = [f"city{i:03d}" for i in range(120)]
    weights = 1.0 / np.arange(1, 121)  # a long tail: a few big cities, many small ones
    return pd.DataFrame(
        {
            "passenger_id": [str(1000 + i) for i in range(n)],  # in order
            "ticket": [str(v) for v in rng.choice(2000, n, replace=False)],  # all distinct, spread
            "name": [f"{rng.choice(first)} {rng.choice(first)}son {i}" for i in range(n)],
            "remark": [
                " ".join(rng.choice(["late", "seat", "window", "asked", "for", "the", "meal", "bag"], 8))
                for _ in range(n)
            ],
            "deck": ["B"] * n,
            "empty": [None] * n,
            "city": rng.choice(cities, n, p=weights / weights.sum()).tolist(),
            "siblings": [str(v) for v in rng.poisson(0.8, n)],  # a count: many repeats
            "fare": [f"{v:.2f}" for v in rng.gamma(2.0, 15.0, n)],
            "boarded": [f"2024-0{rng.integers(1, 9)}-{rng.integers(10, 28)}T{rng.integers(6, 22):02d}:15:00" for _ in range(n)],
            "survived": [str(v) for v in rng.integers(0, 2, n)],
        }
    )


def test_every_non_feature_is_reported_in_one_pass_with_its_reason():
    s = infer_schema(_messy(), "survived")
    reasons = {c.name: c.ignore_reason for c in s.ignored}
    assert set(reasons) == {"passenger_id", "ticket", "name", "remark", "deck", "empty"}
    assert reasons["passenger_id"].endswith("in order: an identifier")
    assert "would repeat about" in reasons["ticket"] and reasons["ticket"].endswith("an identifier")
    assert reasons["name"].endswith(": an identifier") and reasons["remark"].endswith(": free text")
    assert reasons["deck"] == "is constant (every value is 'B')"
    assert reasons["empty"] == "has no values in the sample"
    assert s.feature_names == ["city", "siblings", "fare", "boarded"]
    assert s.column("siblings").dtype == "int" and s.column("boarded").dtype == "datetime"


def test_a_high_cardinality_category_keeps_its_top_values_and_an_other_bucket():
    df = _messy()
    s = infer_schema(df, "survived", max_categories=20)
    city = s.column("city")
    assert city.role == "feature" and city.other_bucket and len(city.categories) == 20
    top = df["city"].value_counts().index[:5]
    assert set(top) <= set(city.categories)
    later = _messy(seed=1)  # other cities of the tail: the "other" bucket, not unseen
    _, violations = check_batch(later, s)
    assert not [v for v in violations if v.column == "city"], violations


def test_overrides_and_their_errors():
    df = _messy()
    s = infer_schema(df, "survived", ignore=["fare"], feature="name,siblings")
    assert s.column("fare").role == "ignore" and s.column("fare").ignore_reason == "ignored on request"
    name = s.column("name")  # an identifier kept on request: its most frequent values
    assert name.role == "feature" and name.dtype == "category" and name.other_bucket
    with pytest.raises(ValueError, match=r"^no column 'nope', 'zip' in the sample \(ignore/feature\)") as e:
        infer_schema(df, "survived", ignore=["nope"], feature=["zip", "fare"])
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"'fare' are asked to be both ignored and features"):
        infer_schema(df, "survived", ignore=["fare"], feature=["fare"])
    with pytest.raises(ValueError, match=r"'survived' is the target"):
        infer_schema(df, "survived", ignore=["survived"])
    with pytest.raises(ValueError, match=r"column 'empty' has no values in the sample: it cannot be a feature"):
        infer_schema(df, "survived", feature=["empty"])


def test_no_feature_left_names_every_column():
    df = pd.DataFrame({"name": [f"n{i}" for i in range(60)], "k": ["x"] * 60, "y": [0, 1] * 30})
    with pytest.raises(ValueError) as e:
        infer_schema(df, "y")
    msg = str(e.value)
    assert msg.startswith("no feature column is left for the model")
    assert "column 'name' has 60 distinct text values" in msg and "column 'k' is constant" in msg


def test_integers_that_repeat_stay_features():
    rng = np.random.default_rng(3)
    weights = rng.choice(np.arange(1500, 5000), 30, replace=False)  # all different, yet
    # 30 values over a 3500 range would tie ~0.1 times at random: no tie is no evidence
    df = pd.DataFrame({"weight": weights, "y": [0, 1] * 15})
    assert infer_schema(df, "y").column("weight").role == "feature"
    ids = pd.DataFrame({"id": rng.permutation(30) + 1, "w": weights, "y": [0, 1] * 15})
    assert infer_schema(ids, "y").column("id").role == "ignore"  # 1..30 in any order: ~15 ties expected


def test_init_home_returns_the_ignored_columns(tmp_path, ctx):
    sample = tmp_path / "sample.csv"
    _messy().to_csv(sample, index=False)
    out = init_home(ctx, str(sample), "survived", ignore=("fare",))
    assert out["columns"] == ["city", "siblings", "boarded"]
    assert set(out["ignored"]) == {"passenger_id", "ticket", "name", "remark", "deck", "empty", "fare"}
    assert out["ignored"]["fare"] == "ignored on request"
    written = load_schema(ctx.settings.schema_path)
    assert written.column("name").ignore_reason == out["ignored"]["name"]
    assert init_home(ctx)["ignored"] == out["ignored"]  # read back from schema.yaml
    with pytest.raises(ValueError, match="no column 'nope'"):
        init_home(ctx, str(sample), "survived", force=True, feature=["nope"])
    with pytest.raises(ValueError, match="add --schema-from"):
        init_home(ctx, ignore=("fare",))


# ------------------------------------------------------------------ validation by share
SCHEMA = Schema(
    columns=[
        ColumnSpec(name="x", dtype="float", min=0, max=10),
        ColumnSpec(name="c", dtype="category", categories=["a", "b"], max_unseen_share=0.02),
        ColumnSpec(name="strict", dtype="category", categories=["u", "v"]),  # the schema's 0
    ],
    target=TargetSpec(name="y", classes=[0, 1]),
)


def _frame(n: int = 400) -> pd.DataFrame:
    return pd.DataFrame(
        {"x": np.linspace(0, 10, n), "c": ["a", "b"] * (n // 2), "strict": ["u", "v"] * (n // 2), "y": [0, 1] * (n // 2)}
    )


def test_unseen_categories_under_the_limit_are_warnings():
    df = _frame()
    df.loc[:3, "c"] = "z"  # 4 of 400: 1 %, under 2 %
    _, violations = check_batch(df, SCHEMA)
    (v,) = violations
    assert v.rule == "unknown_category" and not v.fatal and "not rejected" in v.message
    df.loc[:39, "c"] = "z"  # 10 %
    (v,) = check_batch(df, SCHEMA)[1]
    assert v.fatal and "over the max_unseen_share of 2.0%" in v.message
    ok = _frame()
    ok.loc[0, "strict"] = "w"  # a single row where no unseen value is allowed
    (v,) = check_batch(ok, SCHEMA)[1]
    assert v.fatal and v.column == "strict"


def test_out_of_range_by_share_and_the_batch_size():
    df = _frame()
    df.loc[[0, 1], "x"] = 11.0  # 0.5 %: a drift signal
    (v,) = check_batch(df, SCHEMA)[1]
    assert v.rule == "out_of_range" and not v.fatal
    df.loc[:39, "x"] = -1.0  # 10 %
    assert all(v.fatal for v in check_batch(df, SCHEMA)[1])
    # over 1 % yet within sampling noise: 3 of 100 rows may lie out of a 1 % limit by chance
    assert not over_limit(3, 100, 0.01) and over_limit(40, 400, 0.01) and over_limit(1, 1000, 0.0)


def test_validate_file_passes_with_warnings_and_lists_them_when_it_rejects(tmp_path):
    df = _frame()
    df.loc[0, "x"] = 12.0
    path = tmp_path / "b.csv"
    df.to_csv(path, index=False)
    assert len(validate_file(path, SCHEMA)) == len(df)
    df.loc[1, "strict"] = "w"
    df.to_csv(path, index=False)
    with pytest.raises(BatchRejected) as e:
        validate_file(path, SCHEMA)
    assert sorted(e.value.rules) == ["out_of_range", "unknown_category"]
    assert "[out_of_range, warning]" in str(e.value) and "[unknown_category]" in str(e.value)
