import numpy as np
import pandas as pd
import pytest

from ratchet.core.schema import ColumnSpec, Schema, TargetSpec
from ratchet.data.checks import BatchRejected, Violation, check_batch, validate_file
from ratchet.data.reading import read_batch
from ratchet.data.schema_inference import infer_schema
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch, write_batch

SEED = 11


@pytest.fixture(scope="module")
def schema() -> Schema:
    return infer_schema(generate_batch(0, 1500, SEED), DEMO_TARGET)


@pytest.fixture
def good() -> pd.DataFrame:
    return generate_batch(1, 400, SEED)


def _csv(tmp_path, df, name="batch.csv"):
    return write_batch(df, tmp_path / name)


def _rejected(path, schema) -> list[Violation]:
    with pytest.raises(BatchRejected) as ei:
        read_batch(path, schema)
    return ei.value.violations


def _only(violations, rule) -> Violation:
    hits = [v for v in violations if v.rule == rule]
    assert len(hits) == 1, violations
    return hits[0]


# ------------------------------------------------------------------ good input
def test_good_csv_batch_passes_with_typed_columns(tmp_path, schema, good):
    typed = validate_file(_csv(tmp_path, good), schema)
    assert list(typed.columns) == schema.feature_names + [DEMO_TARGET]
    assert len(typed) == len(good)
    assert typed["age"].dtype == np.int64
    assert typed["income"].dtype == np.float64
    assert typed["home_ownership"].map(type).eq(str).all()
    assert typed[DEMO_TARGET].dtype == np.int64
    pd.testing.assert_frame_equal(typed, good, check_dtype=False)


def test_good_parquet_batch_and_frame_pass(tmp_path, schema, good):
    validate_file(write_batch(good, tmp_path / "b.parquet"), schema)
    _, violations = check_batch(good, schema)
    assert violations == []


# ------------------------------------------------------------------ file-level
def test_file_missing(tmp_path, schema):
    v = _only(_rejected(tmp_path / "nope.csv", schema), "file_missing")
    assert "nope.csv" in v.message


def test_empty_file(tmp_path, schema):
    p = tmp_path / "empty.csv"
    p.write_bytes(b"")
    v = _only(_rejected(p, schema), "file_empty")
    assert "empty.csv" in v.message and "0 bytes" in v.message


def test_file_over_size_limit(tmp_path, schema, good):
    p = _csv(tmp_path, good)
    small = schema.model_copy(update={"max_file_mb": 0.001})
    v = _only(_rejected(p, small), "file_too_large")
    assert "max_file_mb" in v.message and "batch.csv" in v.message


def test_unsupported_suffix(tmp_path, schema):
    p = tmp_path / "batch.xlsx"
    p.write_bytes(b"PK\x03\x04")
    v = _only(_rejected(p, schema), "unsupported_format")
    assert ".xlsx" in v.message


def test_non_utf8_csv(tmp_path, schema, good):
    text = good.head(5).to_csv(index=False).replace("rent", "r\u00e9nt", 1)
    p = tmp_path / "latin1.csv"
    p.write_bytes(text.encode("latin-1"))
    v = _only(_rejected(p, schema), "encoding")
    assert "UTF-8" in v.message and "0xe9" in v.message and "line" in v.message


@pytest.mark.parametrize(
    "body, needle",
    [
        ("a,b,c\n1,2,3\n4,5\n6,7,8\n", "line 3 has 2"),  # short row (pandas would pad it)
        ("a,b,c\n1,2,3\n4,5,6,7\n", "line 3 has 4"),  # long row
        ('a,b,c\n1,"2,3\n4,5,6\n', "not valid CSV"),  # unterminated quote
    ],
)
def test_malformed_csv(tmp_path, schema, body, needle):
    p = tmp_path / "bad.csv"
    p.write_text(body)
    v = _only(_rejected(p, schema), "malformed_csv")
    assert needle in v.message and "bad.csv" in v.message


def test_header_only_has_zero_rows(tmp_path, schema, good):
    p = tmp_path / "header.csv"
    p.write_text(",".join(good.columns) + "\n")
    v = _only(_rejected(p, schema), "no_rows")
    assert "no data rows" in v.message


def test_zero_row_parquet(tmp_path, schema, good):
    v = _only(_rejected(write_batch(good.head(0), tmp_path / "b.parquet"), schema), "no_rows")
    assert "b.parquet" in v.message


def test_corrupt_parquet(tmp_path, schema):
    p = tmp_path / "b.parquet"
    p.write_bytes(b"this is not parquet")
    _only(_rejected(p, schema), "unreadable_file")


def test_duplicate_header_column(tmp_path, schema):
    p = tmp_path / "dup.csv"
    p.write_text("age,age,income\n1,2,3\n")
    v = _only(_rejected(p, schema), "duplicate_column")
    assert v.column == "age" and "'age'" in v.message


# ------------------------------------------------------------------ columns
def _check(tmp_path, df, schema) -> list[Violation]:
    """Through a CSV file, as batches arrive."""
    return check_batch(read_batch(_csv(tmp_path, df), schema), schema)[1]


def test_missing_column(tmp_path, schema, good):
    v = _only(_check(tmp_path, good.drop(columns=["debt_ratio"]), schema), "missing_column")
    assert v.column == "debt_ratio" and "'debt_ratio'" in v.message


def test_extra_column(tmp_path, schema, good):
    df = good.assign(customer_note="hi")
    v = _only(_check(tmp_path, df, schema), "extra_column")
    assert v.column == "customer_note" and "'customer_note'" in v.message

    allowed = schema.model_copy(update={"allow_extra_columns": True})
    typed, violations = check_batch(read_batch(_csv(tmp_path, df), allowed), allowed)
    assert violations == [] and "customer_note" not in typed.columns


def test_wrong_dtype_names_column_and_example(tmp_path, schema, good):
    df = good.astype({"income": object})
    df.loc[[3, 10, 20], "income"] = ["abc", "abc", "12k"]
    typed, violations = check_batch(read_batch(_csv(tmp_path, df), schema), schema)
    v = _only(violations, "dtype")
    assert v.column == "income"
    assert v.message == "column 'income': 3 value(s) are not numbers, e.g. 'abc', '12k'"
    assert typed["income"].isna().sum() == 3
    # the unparseable cells are reported once, not again as nulls
    assert not [x for x in violations if x.rule == "null_share"]


def test_int_column_with_fractions(tmp_path, schema, good):
    df = good.astype({"credit_lines": float})
    df.loc[5, "credit_lines"] = 2.5
    v = _only(_check(tmp_path, df, schema), "dtype")
    assert v.column == "credit_lines" and "not whole numbers" in v.message and "2.5" in v.message


def test_nulls_over_limit(tmp_path, schema, good):
    df = good.copy()
    df.loc[df.index[:40], "employment_years"] = np.nan  # 10% > 1%
    v = _only(_check(tmp_path, df, schema), "null_share")
    assert v.column == "employment_years"
    assert "'employment_years'" in v.message and "40 of 400" in v.message


def test_nulls_within_limit_pass(tmp_path, schema, good):
    df = good.copy()
    df.loc[df.index[:2], "purpose"] = np.nan  # 0.5% <= 1%
    assert _check(tmp_path, df, schema) == []


def test_out_of_range(tmp_path, schema, good):
    df = good.copy()
    df.loc[0, "age"] = -5
    df.loc[1, "debt_ratio"] = 99.0
    violations = [v for v in _check(tmp_path, df, schema) if v.rule == "out_of_range"]
    by_col = {v.column: v for v in violations}
    assert set(by_col) == {"age", "debt_ratio"}
    assert "'age'" in by_col["age"].message and "below the minimum" in by_col["age"].message
    assert "-5" in by_col["age"].message
    assert "above the maximum" in by_col["debt_ratio"].message and "99" in by_col["debt_ratio"].message


def test_infinite_value(tmp_path, schema, good):
    df = good.copy()
    df.loc[0, "income"] = np.inf
    v = _only(_check(tmp_path, df, schema), "not_finite")
    assert v.column == "income" and "'income'" in v.message


def test_unknown_category(tmp_path, schema, good):
    df = good.copy()
    df.loc[[0, 1], "home_ownership"] = "castle"
    v = _only(_check(tmp_path, df, schema), "unknown_category")
    assert v.column == "home_ownership"
    assert "'home_ownership'" in v.message and "'castle'" in v.message and "2 value(s)" in v.message


def test_target_missing(tmp_path, schema, good):
    v = _only(_check(tmp_path, good.drop(columns=[DEMO_TARGET]), schema), "target_missing")
    assert v.column == DEMO_TARGET and f"'{DEMO_TARGET}'" in v.message


def test_single_label_class(tmp_path, schema, good):
    v = _only(_check(tmp_path, good.assign(**{DEMO_TARGET: 1}), schema), "single_class")
    assert v.column == DEMO_TARGET and f"'{DEMO_TARGET}'" in v.message and "class 1" in v.message


def test_unknown_and_missing_labels(tmp_path, schema, good):
    df = good.astype({DEMO_TARGET: object})
    df.loc[0, DEMO_TARGET] = 2
    df.loc[1, DEMO_TARGET] = "yes"
    df.loc[2, DEMO_TARGET] = np.nan
    violations = _check(tmp_path, df, schema)
    unknown = _only(violations, "unknown_label")
    assert "2 label(s)" in unknown.message and f"'{DEMO_TARGET}'" in unknown.message
    assert "'yes'" in unknown.message
    missing = _only(violations, "missing_label")
    assert "1 row(s)" in missing.message


def test_duplicates_over_limit(tmp_path, schema, good):
    df = pd.concat([good, good.head(40)], ignore_index=True)  # 40/440 = 9% > 5%
    v = _only(_check(tmp_path, df, schema), "duplicate_rows")
    assert v.column is None and "40 of 440" in v.message and "max_duplicate_share" in v.message


def test_fewer_than_min_rows(tmp_path, schema, good):
    strict = schema.model_copy(update={"min_rows": 1000})
    v = _only(check_batch(good, strict)[1], "min_rows")
    assert "400 row(s)" in v.message and "min_rows" in v.message


def test_every_violation_names_its_column(tmp_path, schema, good):
    df = good.drop(columns=["age"]).assign(extra=1)
    df.loc[0, "purpose"] = "moon"
    df.loc[1, "income"] = -1e9
    violations = _check(tmp_path, df, schema)
    assert {v.rule for v in violations} == {
        "missing_column",
        "extra_column",
        "unknown_category",
        "out_of_range",
    }
    for v in violations:
        assert f"'{v.column}'" in v.message


def test_batch_rejected_lists_all_violations(tmp_path, schema, good):
    df = good.drop(columns=["age"])
    df.loc[0, "purpose"] = "moon"
    with pytest.raises(BatchRejected) as ei:
        validate_file(_csv(tmp_path, df), schema)
    err = ei.value
    assert sorted(err.rules) == ["missing_column", "unknown_category"]
    assert "[missing_column]" in str(err) and "[unknown_category]" in str(err)
    d = err.violations[0].to_dict()
    assert set(d) == {"column", "rule", "message"}


# ------------------------------------------------------------------ hand-made schema
def test_bool_and_string_classes():
    schema = Schema(
        columns=[
            ColumnSpec(name="flag", dtype="bool"),
            ColumnSpec(name="x", dtype="float", min=0, max=10, max_null_share=0.5),
        ],
        target=TargetSpec(name="y", classes=["bad", "good"]),
    )
    df = pd.DataFrame(
        {
            "flag": ["yes", "No", "TRUE", "0"],
            "x": ["1.5", " 2 ", None, "3"],
            "y": ["good", "bad", "good", "bad"],
        }
    )
    typed, violations = check_batch(df, schema)
    assert violations == []
    assert typed["flag"].tolist() == [True, False, True, False]
    assert typed["x"].iloc[1] == 2.0 and np.isnan(typed["x"].iloc[2])
    assert typed["y"].tolist() == ["good", "bad", "good", "bad"]

    df.loc[0, "flag"] = "maybe"
    v = _only(check_batch(df, schema)[1], "dtype")
    assert v.column == "flag" and "'maybe'" in v.message and "booleans" in v.message
