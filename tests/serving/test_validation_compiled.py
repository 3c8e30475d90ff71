"""The validator compiled per schema gives what the general one gives, or hands the rows to it.

Any JSON value in any column (numbers at the int64 and float limits, NaN, nulls, strings, bools,
dates, extra and missing fields): the compiled function either returns the same columns and
counts as the field-by-field validator, or None (and ``validate`` then answers with the general
validator's result or error). Well-formed rows must take the compiled path.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratchet.core.schema import ColumnSpec, Schema, TargetSpec
from ratchet.serving.validation import RequestError, RowValidator, parse_json
from tests.serving.helpers import MIXED_SCHEMA, SCHEMA, make_frame, mixed_rows, rows_of

DATED = Schema(
    columns=[
        ColumnSpec(name="when", dtype="datetime", max_null_share=0.1),
        ColumnSpec(name="amount", dtype="float", min=0.0),
        ColumnSpec(name="kind", dtype="category", categories=["a", "b"], other_bucket=True),
        ColumnSpec(name="skip", dtype="float", role="ignore"),
    ],
    target=TargetSpec(name="y", classes=[0, 1]),
)
SCHEMAS = [SCHEMA, MIXED_SCHEMA, DATED]

values = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 100, 101, 50, 51]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([3.0, 2.5, -5.0, 5.0, 5.000001, 1e19, 1.8e308, -0.0]),
    st.sampled_from(["red", "green", "purple", "", "a", "b", "z", "true", "no", "1", "2024-05-01",
                     "2024-05-01T08:30:00Z", "not a date"]),
    st.text(max_size=5), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


# values of a column's own type, edges included (most rows are then valid, some out of range)
PLAUSIBLE = {
    "float": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**64), 2**64),
                       st.sampled_from([-5.0, 5.0, 5.5, -0.0, 1.8e308])),
    "int": st.one_of(st.integers(-(2**64), 2**64), st.sampled_from([0, 100, 101, -1, 3.0, 1e19, 2.5])),
    "category": st.sampled_from(["red", "green", "blue", "purple", "a", "b", "zz", ""]),
    "bool": st.sampled_from([True, False, "yes", "n", 1, 0, "maybe"]),
    "datetime": st.sampled_from(["2024-05-01", "2024-05-01T08:30:00Z", "2019-12-31T23:59:59+02:00", "x"]),
}


def _row(schema: Schema, draw) -> dict:
    names = [c.name for c in schema.columns]
    row = {}
    for c in schema.columns:
        kind = draw(st.integers(0, 9))  # mostly the column's own type, some nulls, some anything
        row[c.name] = draw(values) if kind == 0 else None if kind == 1 else draw(PLAUSIBLE[c.dtype])
    if draw(st.integers(0, 9)) == 0:
        row.pop(draw(st.sampled_from(names)))
    if draw(st.integers(0, 9)) == 0:
        row[draw(st.sampled_from(["extra", "x9"]))] = draw(values)
    return row


@st.composite
def cases(draw):
    schema = draw(st.sampled_from(SCHEMAS))
    return schema, [_row(schema, draw) for _ in range(draw(st.integers(1, 3)))]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_compiled_validator_agrees_with_the_general_one(case):
    schema, rows = case
    v = RowValidator(schema)
    fast = v._fast(rows)
    try:
        want = v._validate(rows)
    except RequestError as e:
        assert fast is None, (rows, e.message)
        return
    if fast is None:
        return
    assert fast.names == want.names and fast.n_rows == want.n_rows
    assert list(fast.columns) == list(want.columns)
    for name in want.columns:
        assert all(_same(a, b) for a, b in zip(fast.columns[name], want.columns[name], strict=True)), name
    assert fast.unseen_categories == want.unseen_categories
    assert fast.out_of_range == want.out_of_range


def test_well_formed_rows_take_the_compiled_path():
    for schema, rows in [(SCHEMA, rows_of(make_frame(40, 3))), (MIXED_SCHEMA, mixed_rows(40, 4, messy=True))]:
        v = RowValidator(schema)
        batch = v._fast(rows)
        assert batch is not None and batch.n_rows == len(rows)
        single = [v._fast([r]) for r in rows]
        assert all(b is not None for b in single)
    dated = RowValidator(DATED)
    got = dated._fast([{"when": "2024-05-01T08:30:00Z", "amount": -1, "kind": "zz", "skip": "anything"}])
    assert got is not None and got.out_of_range == {"amount": 1} and not got.unseen_categories
    assert got.columns["amount"] == [-1.0] and type(got.columns["amount"][0]) is float


def test_json_parse_matches_the_stdlib_where_orjson_differs():
    # orjson reads an integer past 64 bits as a float and refuses NaN/Infinity; the answer is the stdlib's
    assert parse_json(b'{"a": 18446744073709551616}') == {"a": 18446744073709551616}
    assert math.isinf(parse_json(b'{"a": 1e999}')["a"])
    assert math.isnan(parse_json(b'{"a": NaN}')["a"])
    assert parse_json(b'["\\ud800"]') == ["\ud800"]
