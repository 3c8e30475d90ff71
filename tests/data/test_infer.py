import numpy as np
import pandas as pd
import pytest

from ratchet.core.schema import dump_schema, load_schema
from ratchet.data.checks import check_batch
from ratchet.data.schema_inference import infer_schema, read_table
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch, write_batch

SEED = 11


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return generate_batch(0, 1500, SEED)


def test_infer_on_synthetic(sample):
    s = infer_schema(sample, DEMO_TARGET)
    assert s.target.name == DEMO_TARGET and s.target.classes == [0, 1]
    assert DEMO_TARGET not in s.feature_names
    dtypes = {c.name: c.dtype for c in s.columns}
    assert dtypes == {
        "age": "int",
        "income": "float",
        "debt_ratio": "float",
        "credit_lines": "int",
        "late_payments": "int",
        "employment_years": "float",
        "home_ownership": "category",
        "purpose": "category",
    }
    assert s.column("home_ownership").categories == ["mortgage", "own", "rent"]
    for c in s.columns:
        assert c.max_null_share == 0.01
        if c.dtype in ("int", "float"):
            lo, hi = sample[c.name].min(), sample[c.name].max()
            span = hi - lo
            # widened by half the span on each side (rounded outward), never below 0 for a non-negative column
            assert c.min <= lo and c.max >= hi + 0.5 * span
            assert c.min >= 0
            assert c.min <= max(lo - 0.5 * span, 0) + 1e-9
    age = s.column("age")
    assert age.min == 0 and float(age.max).is_integer()


def test_inferred_schema_accepts_later_batches_and_survives_yaml(tmp_path, sample):
    s = infer_schema(sample, DEMO_TARGET)
    dump_schema(s, tmp_path / "schema.yaml")
    assert load_schema(tmp_path / "schema.yaml") == s
    for i in range(1, 5):
        _, violations = check_batch(generate_batch(i, 1500, SEED, data_drift_at=3, concept_drift_at=3), s)
        assert violations == [], (i, violations)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_read_table_gives_the_same_schema(tmp_path, sample, suffix):
    df = read_table(write_batch(sample, tmp_path / f"sample{suffix}"))
    assert infer_schema(df, DEMO_TARGET) == infer_schema(sample, DEMO_TARGET)


def test_read_table_errors_are_value_errors(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1\n")
    with pytest.raises(ValueError, match="x.csv"):
        read_table(p)
    with pytest.raises(ValueError, match="does not exist"):
        read_table(tmp_path / "missing.parquet")


def test_hand_made_frame_from_text():
    # as a CSV arrives: every cell a string, None for missing
    df = pd.DataFrame(
        {
            "member": ["yes", "no", "Yes", "no", None, "no", "yes", "no", "no", "yes"],
            "visits": ["3", "5", "0", "12", "7", "1", "2", "2", "4", "9"],
            "score": ["0.5", "1.25", "-2", "3.13", "0", "1", "2", "2.5", None, "1"],
            "city": ["Oslo", "Lima", "Oslo", "Pune", "Lima", "Oslo", "Lima", "Pune", "Oslo", "Lima"],
            "const": ["4", "4", "4", "4", "4", "4", "4", "4", "4", "4"],
            "label": ["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"],
        }
    )
    s = infer_schema(df, "label")
    c = {col.name: col for col in s.columns}
    assert c["member"].dtype == "bool" and c["member"].min is None
    assert c["visits"].dtype == "int" and (c["visits"].min, c["visits"].max) == (0.0, 18.0)
    assert c["score"].dtype == "float"
    # span 5.13 -> pad 2.565: [-4.565, 5.695], rounded outward to 0.01
    assert c["score"].min == pytest.approx(-4.57) and c["score"].max == pytest.approx(5.70)
    assert c["city"].dtype == "category" and c["city"].categories == ["Lima", "Oslo", "Pune"]
    # constant column: widened by margin x its magnitude
    assert (c["const"].min, c["const"].max) == (2.0, 6.0)
    # 1 null in 10 -> 1.5 * 0.1 + 0.01
    assert c["member"].max_null_share == pytest.approx(0.16)
    assert c["city"].max_null_share == 0.01
    assert s.target.classes == ["a", "b"]

    typed, violations = check_batch(df, s)
    assert violations == []
    assert typed["member"].dtype == "boolean"  # has a null


def test_typed_frame_and_float_labels():
    df = pd.DataFrame(
        {
            "flag": [True, False, True, False],
            "n": pd.array([1, 2, None, 4], dtype="Int64"),
            "kind": pd.Categorical(["x", "y", "x", "y"]),
            "y": [0.0, 1.0, 1.0, 0.0],
        }
    )
    s = infer_schema(df, "y", margin=0.0)
    c = {col.name: col for col in s.columns}
    assert [c["flag"].dtype, c["n"].dtype, c["kind"].dtype] == ["bool", "int", "category"]
    assert (c["n"].min, c["n"].max) == (1.0, 4.0)
    assert s.target.classes == [0, 1]


def test_missing_target_is_named():
    df = pd.DataFrame({"a": [1, 2], "b": [0, 1]})
    with pytest.raises(ValueError, match=r"target column 'label' is not in the data.*'a', 'b'"):
        infer_schema(df, "label")


def test_single_class_target():
    df = pd.DataFrame({"a": [1, 2, 3], "y": [1, 1, np.nan]})
    with pytest.raises(ValueError, match=r"target column 'y' has 1 distinct label"):
        infer_schema(df, "y")


def test_identifier_column_is_refused():
    df = pd.DataFrame({"id": [f"c{i}" for i in range(100)], "y": [0, 1] * 50})
    with pytest.raises(ValueError, match=r"column 'id' has 100 distinct text values"):
        infer_schema(df, "y")
    assert infer_schema(df, "y", max_categories=200).column("id").dtype == "category"


def test_empty_column_is_refused():
    df = pd.DataFrame({"a": [None, None], "y": [0, 1]})
    with pytest.raises(ValueError, match=r"column 'a' has no values"):
        infer_schema(df, "y")
