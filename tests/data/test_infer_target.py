"""The target's task as ``ratchet init`` infers it: classes, or a number to regress on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from ratchet.data.checks import check_batch
from ratchet.data.schema_inference import infer_schema


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    return load_diabetes(as_frame=True).frame


def visits(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """A count of outpatient visits, 0 to 74: whole numbers with many values."""
    rng = np.random.default_rng(seed)
    count = np.minimum(rng.poisson(6, n) * rng.integers(1, 8, n), 74)
    count[:2] = [0, 74]
    return pd.DataFrame({"age": rng.integers(20, 90, n), "visits": count})


def test_a_continuous_target_is_regression_with_its_range(diabetes):
    target = infer_schema(diabetes, "target").target
    assert target.task == "regression" and target.classes is None
    assert (target.min, target.max) == (float(diabetes.target.min()), float(diabetes.target.max()))


@pytest.mark.parametrize("as_text", [False, True], ids=["ints", "csv-text"])
def test_a_count_with_many_values_is_regression_not_38_classes(as_text):
    df = visits()
    assert df.visits.nunique() > 20
    if as_text:  # as a CSV arrives
        df = df.astype(str)
    target = infer_schema(df, "visits").target
    assert target.task == "regression" and (target.min, target.max) == (0.0, 74.0)


def test_few_distinct_integers_share_rule_on_a_small_sample():
    # 12 distinct whole numbers in 100 rows: over 10 and over 5% of the rows, a quantity
    df = pd.DataFrame({"x": range(100), "y": [i % 12 for i in range(100)]})
    assert infer_schema(df, "y").target.task == "regression"
    # the same 12 values in 1,000 rows recur: labels
    df = pd.DataFrame({"x": range(1000), "y": [i % 12 for i in range(1000)]})
    assert infer_schema(df, "y").target.task == "multiclass"


@pytest.mark.parametrize(
    ("y", "task", "classes"),
    [
        ([0, 1] * 20, "binary", [0, 1]),
        ([1, 2, 3, 4, 5] * 40, "multiclass", [1, 2, 3, 4, 5]),
        (["a", "b", "c"] * 10, "multiclass", ["a", "b", "c"]),
        ([True, False] * 10, "binary", ["False", "True"]),
        ([0.0, 1.0] * 10, "binary", [0, 1]),
    ],
)
def test_labels_stay_classification(y, task, classes):
    target = infer_schema(pd.DataFrame({"x": range(len(y)), "y": y}), "y").target
    assert (target.task, target.classes, target.min) == (task, classes, None)


def test_a_fraction_makes_a_target_regression():
    df = pd.DataFrame({"x": range(40), "y": [0, 1] * 19 + [0.5, 1]})
    assert infer_schema(df, "y").target.task == "regression"


def test_the_task_argument_overrides_inference():
    ratings = pd.DataFrame({"x": range(200), "y": [1, 2, 3, 4, 5] * 40})
    target = infer_schema(ratings, "y", task="regression").target
    assert (target.task, target.classes, target.min, target.max) == ("regression", None, 1.0, 5.0)
    assert infer_schema(ratings, "y", task="multiclass").target.classes == [1, 2, 3, 4, 5]
    assert infer_schema(visits(), "visits", task="multiclass").target.task == "multiclass"
    with pytest.raises(ValueError, match=r"has 5 classes; task 'binary' does not fit"):
        infer_schema(ratings, "y", task="binary")
    text = pd.DataFrame({"x": range(4), "y": ["a", "b", "a", "b"]})
    with pytest.raises(ValueError, match=r"target column 'y' is not numeric; regression needs"):
        infer_schema(text, "y", task="regression")


def test_too_many_text_labels_point_at_regression_only_for_numbers():
    df = pd.DataFrame({"x": range(100), "y": [f"c{i}" for i in range(100)]})
    with pytest.raises(ValueError, match=r"has 100 distinct values; a class label takes at most 50"):
        infer_schema(df, "y")


def test_a_constant_number_cannot_be_learnt(diabetes):
    df = diabetes.assign(target=1.5)
    with pytest.raises(ValueError, match=r"1 distinct finite value"):
        infer_schema(df, "target")


def test_batches_of_a_regression_target_are_checked_as_numbers(diabetes):
    schema = infer_schema(diabetes, "target")
    typed, violations = check_batch(diabetes, schema)
    assert violations == [] and typed["target"].dtype == "float64"
    assert typed["target"].tolist() == diabetes["target"].tolist()
    bad = diabetes.astype(str)
    bad.loc[3, "target"], bad.loc[4, "target"] = "abc", None
    _, violations = check_batch(bad, schema)
    assert {v.rule for v in violations} == {"missing_label", "bad_target"}, violations
