"""The target of the schema (task, classes, range) and the regression metrics."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from pydantic import ValidationError
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from ratchet.core.metrics import higher_is_better, regression_metrics
from ratchet.core.schema import Schema, TargetSpec, dump_schema, load_schema

OLD_SCHEMA = """\
columns:
- {name: x, dtype: float, min: 0.0, max: 1.0, categories: null, max_null_share: 0.01}
target:
  name: label
  classes: %s
min_rows: 1
"""


@pytest.mark.parametrize(("classes", "task"), [("[0, 1]", "binary"), ("[a, b, c]", "multiclass")])
def test_a_schema_file_without_task_still_loads(tmp_path, classes, task):
    path = tmp_path / "schema.yaml"
    path.write_text(OLD_SCHEMA % classes)
    schema = load_schema(path)
    assert schema.target.task == task and not schema.target.is_regression
    assert schema.target.classes == yaml.safe_load(classes)
    dump_schema(schema, path)  # written back: the task is now in the file
    assert yaml.safe_load(path.read_text())["target"]["task"] == task
    assert load_schema(path) == schema


def test_a_regression_target_round_trips_with_its_range(tmp_path):
    schema = Schema(columns=[], target=TargetSpec(name="y", task="regression", min=25.0, max=346.0))
    dump_schema(schema, tmp_path / "schema.yaml")
    written = yaml.safe_load((tmp_path / "schema.yaml").read_text())["target"]
    assert {k: written[k] for k in ("name", "task", "min", "max")} == {
        "name": "y", "task": "regression", "min": 25.0, "max": 346.0
    }
    assert written.get("classes") is None
    loaded = load_schema(tmp_path / "schema.yaml")
    assert loaded == schema and loaded.target.is_regression


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"task": "regression", "classes": [0, 1]}, "regression target has no 'classes'"),
        ({"task": "regression", "min": 3.0, "max": 1.0}, "min 3.0 > max 1.0"),
        ({"task": "binary"}, "binary target needs 'classes'"),
        ({"task": "binary", "classes": [1, 2, 3]}, "does not fit 3 classes"),
        ({"task": "multiclass", "classes": [0, 1]}, "does not fit 2 classes"),
        ({"task": "binary", "classes": [0, 1], "min": 0.0}, "min/max apply to a regression target only"),
        ({"classes": [1]}, "at least two classes"),
        ({"task": "ordinal", "classes": [0, 1]}, "task"),
    ],
)
def test_target_specs_that_do_not_hold_together_are_refused(spec, match):
    with pytest.raises(ValidationError, match=match):
        TargetSpec(name="y", **spec)


def test_regression_metrics_are_sklearn_s():
    rng = np.random.default_rng(0)
    y = rng.normal(100, 20, 500)
    pred = y + rng.normal(0, 10, 500)
    got = regression_metrics(y, pred)
    assert got["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, pred)), rel=1e-12)
    assert got["mae"] == pytest.approx(mean_absolute_error(y, pred), rel=1e-12)
    assert got["r2"] == pytest.approx(r2_score(y, pred), rel=1e-12)
    assert regression_metrics(y, np.full_like(y, y.mean()))["r2"] == pytest.approx(0.0, abs=1e-12)
    assert [higher_is_better(m) for m in ("rmse", "mae", "r2")] == [False, False, True]


@pytest.mark.parametrize(
    ("y", "pred", "match"),
    [
        ([1.0, 2.0], [1.0, np.nan], "NaN or infinite"),
        ([1.0, 2.0], [1.0], "has 1 rows, expected 2"),
        ([], [], "empty"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "1-D"),
        ([1.0, 2.0], ["a", "b"], "not a numeric array"),
    ],
)
def test_regression_metric_inputs_are_checked(y, pred, match):
    with pytest.raises(ValueError, match=match):
        regression_metrics(y, pred)
