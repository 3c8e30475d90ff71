"""Parse and validate a /predict body against a model's schema.

Everything wrong with a request becomes a :class:`RequestError` (4xx) naming the
row and field; nothing here raises anything else on any input.

Rules per dtype (strict: no string-to-number coercion):

* ``float``: a JSON number (an integer is accepted), finite: ``NaN``, ``Infinity``,
  ``-Infinity`` and overflowing literals such as ``1e999`` are rejected.
* ``int``: a JSON integer, or a float with no fractional part (``3.0``), within int64.
* ``category``: a JSON string. An unseen category is NOT an error (the model
  sends it to its "other" bucket); it is counted, except in a column with an
  ``other_bucket``, where values past its most frequent ones are expected.
* ``datetime``: an ISO 8601 date or date-time string (``2024-05-01``,
  ``2024-05-01T08:30:00Z``); validated values are naive UTC ``datetime``s, from which
  the model derives its calendar features.
* ``bool``: ``true`` / ``false``.
* ``null``: only for a column whose schema allows nulls (``max_null_share > 0``).
* A value outside the column's ``min``/``max`` is served and counted, not rejected
  (that is drift, which monitoring should see, not hide).
* A field not in the schema is rejected unless ``schema.allow_extra_columns``. A column
  the schema ignores (``role: ignore``) may be sent (any value) or left out; it is dropped.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

try:  # the first JSON parse of every request (the stdlib's on what it refuses)
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency
    orjson = None

from ratchet.core.schema import ColumnSpec, Schema
from ratchet.data.coercion import FALSE_WORDS, TRUE_WORDS
from ratchet.data.datetimes import parse_datetime

MAX_REPORTED_ERRORS = 20
# a run of 20 digits, found as twenty 9s once every digit is a 9 (bytes.translate and find run at
# C speed: a tenth of a regular expression's scan of a 100-row body)
_DIGITS_AS_NINES = bytes.maketrans(b"012345678", b"999999999")
_TWENTY_DIGITS = b"9" * 20
MAX_ENTITY_KEY_LEN = 512
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class RequestError(Exception):
    """A client error: HTTP ``status`` with a message and, for field errors, a list."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []

    def body(self) -> dict:
        out: dict = {"detail": self.message}
        if self.errors:
            out["errors"] = self.errors
        return out


def json_type(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, float) and not math.isfinite(v):
        return _nonfinite_name(v)
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _nonfinite_name(f: float) -> str:
    return "NaN" if math.isnan(f) else ("Infinity" if f > 0 else "-Infinity")


def parse_json(raw: bytes) -> object:
    """JSON text to Python; ``NaN``/``Infinity`` literals parse to floats and are
    rejected later by field, with the row named.

    orjson parses first (a sixth of the stdlib's time on a single-row body); what it refuses
    (``NaN``/``Infinity`` literals, numbers beyond a double, lone surrogates, bad UTF-8, deep
    nesting, an empty body) is parsed again by the stdlib, whose result or error message is the
    answer. A body with a run of 20 digits goes to the stdlib at once: orjson reads an integer
    past 64 bits as a float, the stdlib as an int. So: the same objects and the same messages
    as the stdlib alone."""
    if orjson is not None and raw.translate(_DIGITS_AS_NINES).find(_TWENTY_DIGITS) < 0:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    if not raw.strip():
        raise RequestError(400, "empty body: expected a JSON object")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError(400, "body is not valid UTF-8") from None
    except json.JSONDecodeError as e:
        raise RequestError(
            400, f"body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise RequestError(400, "body is nested too deeply") from None
    except ValueError as e:  # e.g. an integer literal over Python's 4300-digit limit
        raise RequestError(400, f"body is not valid JSON: {e}") from None


@dataclass
class PredictRequest:
    rows: list[dict]
    entity_key: str | None
    single: bool  # sent as {"row": {...}}


def parse_predict_body(obj: object, max_rows: int) -> PredictRequest:
    """``{"rows": [{...}, ...], "entity_key": "..."}`` or ``{"row": {...}, "entity_key": "..."}``."""
    if type(obj) is dict and len(obj) == 1 and type(obj.get("row")) is dict:  # the common single row
        return PredictRequest(rows=[obj["row"]], entity_key=None, single=True)
    if not isinstance(obj, dict):
        raise RequestError(
            422,
            f"body must be a JSON object with 'rows' (array of objects) or 'row' (object), got {json_type(obj)}",
        )
    unknown = sorted(set(obj) - {"rows", "row", "entity_key"})
    if unknown:
        raise RequestError(
            422,
            f"unknown top-level field(s) {unknown}: expected 'rows' or 'row', and optionally 'entity_key'",
        )
    if ("rows" in obj) == ("row" in obj):
        raise RequestError(422, "give exactly one of 'rows' (array of objects) or 'row' (object)")
    if "row" in obj:
        row = obj["row"]
        if not isinstance(row, dict):
            raise RequestError(422, f"field 'row' must be an object, got {json_type(row)}")
        rows, single = [row], True
    else:
        rows, single = obj["rows"], False
        if not isinstance(rows, list):
            raise RequestError(422, f"field 'rows' must be an array of objects, got {json_type(rows)}")
        if not rows:
            raise RequestError(422, "field 'rows' is empty")
        if len(rows) > max_rows:
            raise RequestError(413, f"field 'rows' has {len(rows)} rows, more than max_rows={max_rows}")
        for i, r in enumerate(rows):
            if not isinstance(r, dict):
                raise RequestError(
                    422,
                    f"rows[{i}] must be an object, got {json_type(r)}",
                    [{"row": i, "field": None, "error": f"expected an object, got {json_type(r)}"}],
                )
    return PredictRequest(rows=rows, entity_key=parse_entity_key(obj.get("entity_key")), single=single)


def parse_entity_key(key: object, where: str = "field 'entity_key'") -> str | None:
    """The sticky routing key of a request (a string or an integer), or None."""
    if key is None:
        return None
    if isinstance(key, bool) or not isinstance(key, str | int):
        raise RequestError(422, f"{where} must be a string, got {json_type(key)}")
    key = str(key)
    if len(key) > MAX_ENTITY_KEY_LEN:
        raise RequestError(422, f"{where} is longer than {MAX_ENTITY_KEY_LEN} characters")
    return key


@dataclass
class ValidatedBatch:
    """Validated rows as columns (``{name: [value, ...]}`` in schema order); ``frame`` is
    built on first use only, so a request served by the fast path never touches pandas."""

    columns: dict[str, list]
    names: list[str]
    n_rows: int
    unseen_categories: dict[str, int] = field(default_factory=dict)  # column -> rows
    out_of_range: dict[str, int] = field(default_factory=dict)  # column -> rows
    _frame: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = pd.DataFrame(self.columns, columns=self.names)
        return self._frame


class _Bad(Exception):
    pass


class RowValidator:
    """Validates rows for one schema; built once per loaded model."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.names = schema.feature_names
        self.known = {c.name for c in schema.columns}  # ignored columns may be sent, and are dropped
        self.allow_extra = schema.allow_extra_columns
        self._checks = [(c.name, self._checker(c), c) for c in schema.features]
        self._categories = {c.name: frozenset(c.categories or ()) for c in schema.features}
        self._fast = _compile(schema, self.names, self._categories, {c.name: self._checker(c) for c in schema.features})

    @staticmethod
    def _checker(spec: ColumnSpec):
        nullable = spec.max_null_share > 0
        dtype = spec.dtype

        def null():
            if not nullable:
                raise _Bad("null is not allowed")
            return math.nan if dtype in ("float", "int") else None

        if dtype == "float":

            def check(v):
                if v is None:
                    return null()
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise _Bad(f"expected a number, got {json_type(v)}")
                try:
                    f = float(v)
                except OverflowError:
                    raise _Bad("number is too large") from None
                if not math.isfinite(f):
                    raise _Bad(f"expected a finite number, got {_nonfinite_name(f)}")
                return f

        elif dtype == "int":

            def check(v):
                if v is None:
                    return null()
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise _Bad(f"expected an integer, got {json_type(v)}")
                if isinstance(v, float):
                    if not math.isfinite(v):
                        raise _Bad(f"expected an integer, got {_nonfinite_name(v)}")
                    if not v.is_integer():
                        raise _Bad(f"expected an integer, got {v!r}")
                    v = int(v)
                if not _INT64_MIN <= v <= _INT64_MAX:
                    raise _Bad("integer is out of the int64 range")
                return v

        elif dtype == "datetime":

            def check(v):
                if v is None:
                    return null()
                if not isinstance(v, str):
                    raise _Bad(f"expected an ISO 8601 date/time string, got {json_type(v)}")
                try:
                    return parse_datetime(v)
                except ValueError:
                    shown = v if len(v) <= 40 else v[:40] + "..."
                    raise _Bad(f"expected an ISO 8601 date/time string, got {shown!r}") from None

        elif dtype == "category":

            def check(v):
                if v is None:
                    return null()
                if not isinstance(v, str):
                    raise _Bad(f"expected a string (category), got {json_type(v)}")
                return v

        else:  # bool

            def check(v):
                # what a batch accepts, a request accepts: true/false, 0/1, yes/no, t/f, y/n
                if v is None:
                    return null()
                if isinstance(v, bool):
                    return v
                key = str(v).strip().lower() if isinstance(v, str | int) else None
                if key in TRUE_WORDS:
                    return True
                if key in FALSE_WORDS:
                    return False
                raise _Bad(f"expected true or false (or yes/no, 1/0), got {json_type(v)} {v!r}")

        return check

    def validate(self, rows: list[dict]) -> ValidatedBatch:
        """Rows to columns, or a RequestError naming every bad field (up to ``MAX_REPORTED_ERRORS``).
        Rows that are all well-formed take this schema's compiled validator; any row it refuses
        (an error, an odd type) is validated again here, field by field, for the messages."""
        fast = self._fast(rows)
        if fast is not None:
            return fast
        return self._validate(rows)

    def _validate(self, rows: list[dict]) -> ValidatedBatch:
        n = len(rows)
        cols: dict[str, list] = {name: [None] * n for name in self.names}
        errors: list[dict] = []
        n_errors = 0
        unseen: Counter = Counter()
        out_of_range: Counter = Counter()
        for i, row in enumerate(rows):
            if not self.allow_extra:
                for extra in row.keys() - self.known:
                    n_errors += 1
                    if len(errors) < MAX_REPORTED_ERRORS:
                        errors.append(
                            {"row": i, "field": extra, "error": "unknown field (not in the model's schema)"}
                        )
            for name, check, spec in self._checks:
                if name not in row:
                    n_errors += 1
                    if len(errors) < MAX_REPORTED_ERRORS:
                        errors.append({"row": i, "field": name, "error": "missing field"})
                    continue
                try:
                    v = check(row[name])
                except _Bad as e:
                    n_errors += 1
                    if len(errors) < MAX_REPORTED_ERRORS:
                        errors.append({"row": i, "field": name, "error": str(e)})
                    continue
                cols[name][i] = v
                if v is None or n_errors:
                    continue
                if spec.dtype == "category":
                    if v not in self._categories[name] and not spec.other_bucket:
                        unseen[name] += 1
                elif spec.dtype in ("float", "int") and v == v:  # skip NaN (allowed null)
                    if (spec.min is not None and v < spec.min) or (spec.max is not None and v > spec.max):
                        out_of_range[name] += 1
        if n_errors:
            shown = "; ".join(f"rows[{e['row']}].{e['field']}: {e['error']}" for e in errors[:5])
            more = f" (and {n_errors - 5} more)" if n_errors > 5 else ""
            raise RequestError(422, f"invalid input: {shown}{more}", errors)
        return ValidatedBatch(
            columns=cols, names=self.names, n_rows=n, unseen_categories=unseen, out_of_range=out_of_range
        )


# ---------------------------------------------------------------- compiled per schema
# Written by hand rather than with a schema library (pydantic, msgspec): their errors and coercions
# are not these rules (no string-to-number coercion, an unseen category counted, an out-of-range
# value served and counted), and their per-call overhead is what this removes.
_INT64_CHECK = f"{_INT64_MIN} <= v <= {_INT64_MAX}"


def _compile(schema: Schema, names: list[str], categories: dict[str, frozenset], checkers: dict):
    """``rows -> ValidatedBatch | None``: the schema's rules as one generated function, each column's
    checks inlined (a sixth of :meth:`RowValidator._validate`'s time on a single row). It accepts
    only what the general validator accepts with the same values and counts, and returns None
    on anything else (an error, a type it does not inline), which that validator then reports."""
    env: dict = {"ValidatedBatch": ValidatedBatch, "_Bad": _Bad, "nan": math.nan,
                 "NAMES": names, "KNOWN": frozenset(c.name for c in schema.columns), "NF": len(names)}
    body: list[str] = []
    for j, spec in enumerate(schema.features):
        nullable = spec.max_null_share > 0
        key = repr(spec.name)
        body.append(f"v = row[{key}]")
        body.append("t = type(v)")
        range_check = []
        if spec.dtype in ("float", "int") and (spec.min is not None or spec.max is not None):
            env[f"MIN{j}"], env[f"MAX{j}"] = spec.min, spec.max
            cond = " or ".join(
                ([f"v < MIN{j}"] if spec.min is not None else []) + ([f"v > MAX{j}"] if spec.max is not None else [])
            )
            range_check = [f"    if {cond}:", f"        oor[{key}] = oor.get({key}, 0) + 1"]
        null = ["elif v is None:", f"    v = {'nan' if spec.dtype in ('float', 'int') else 'None'}"] if nullable else []
        if spec.dtype == "float":
            body += ["if t is float:", "    if v - v != 0.0:", "        return None", *range_check,
                     f"elif t is int and {_INT64_CHECK}:", "    v = float(v)", *range_check, *null,
                     "else:", "    return None"]
        elif spec.dtype == "int":
            body += [f"if t is int and {_INT64_CHECK}:", *(range_check or ["    pass"]),
                     "elif t is float and v - v == 0.0 and v.is_integer():", "    v = int(v)",
                     f"    if not {_INT64_CHECK}:", "        return None", *range_check, *null,
                     "else:", "    return None"]
        elif spec.dtype == "category":
            counted = ([f"    if v not in CATS{j}:", f"        unseen[{key}] = unseen.get({key}, 0) + 1"]
                       if not spec.other_bucket else ["    pass"])
            env[f"CATS{j}"] = categories[spec.name]
            body += ["if t is str:", *counted, *null, "else:", "    return None"]
        else:  # bool, datetime: the general checker (its values are the answer)
            env[f"CHECK{j}"] = checkers[spec.name]
            body += ["try:", f"    v = CHECK{j}(v)", "except _Bad:", "    return None"]
        body.append(f"c{j}.append(v)")
    extra = [] if schema.allow_extra_columns else [
        "if len(row) != NF and row.keys() - KNOWN:",  # every feature present: a longer row has others
        "    return None",
    ]
    cols = ", ".join(f"{n!r}: c{j}" for j, n in enumerate(names))
    src = "\n".join([
        "def validate(rows):",
        *[f"    c{j} = []" for j in range(len(names))],
        "    unseen = {}",  # plain dicts: a Counter() costs more than this whole row's checks of a column
        "    oor = {}",
        "    try:",
        "        for row in rows:",
        *["            " + line for line in extra],
        *["            " + line for line in body],
        "    except (KeyError, TypeError, AttributeError):",  # a missing field, a row that is no object
        "        return None",
        f"    return ValidatedBatch(columns={{{cols}}}, names=NAMES, n_rows=len(rows),",
        "                          unseen_categories=unseen, out_of_range=oor)",
    ])
    exec(compile(src, f"<validator for {len(names)} columns>", "exec"), env)  # noqa: S102 - our own source
    return env["validate"]
