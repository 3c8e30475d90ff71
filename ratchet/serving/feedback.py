"""Feedback: the ``/feedback`` body (:class:`FeedbackRequest`) and the bounded map
request_id -> what each model predicted (:class:`FeedbackStore`), for live accuracy (for a
regression model, live errors: a label is a JSON number, the outcome ``prediction - label``)."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from ratchet.serving.validation import RequestError, json_type

# An entry is a flat immutable tuple (n_rows, answered, version, labels, version, labels, ...):
# ``answered`` a bitmask of rows that got feedback, then (version, labels) per model, the served
# one first (a shadow's after it); classes are kept per version. Tuples of strings and numbers
# are untracked by Python's cyclic GC once a collection has looked at them, which for a tuple
# holding tuples takes one collection per level of nesting: flat, an entry is untracked
# before it reaches the oldest generation, so 100,000 entries add nothing to a full collection.
_N, _ANSWERED, _PREDS = 0, 1, 2
_UNSET = object()  # no classes recorded yet for a version (None means regression)


class FeedbackRequest(BaseModel):
    """``{"request_id": "...", "label": x}`` (row 0, or ``"row": i``) or
    ``{"request_id": "...", "labels": [x, ...]}`` (one per row of the request).

    Labels are checked against the answering model's classes by :meth:`FeedbackStore.resolve`
    (after the request id is found), rows against the request's row count."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    request_id: str = Field(min_length=1)
    label: Any = None
    row: int = 0
    labels: list[Any] = Field(default_factory=list, min_length=1)

    @model_validator(mode="after")
    def _one_form(self) -> FeedbackRequest:
        problem = _form_problem(self.model_fields_set)
        if problem:
            raise PydanticCustomError("feedback_form", problem)
        return self

    @property
    def label_field(self) -> str:
        """The field the labels came in: ``label`` or ``labels``."""
        return "labels" if "labels" in self.model_fields_set else "label"

    @property
    def labels_by_row(self) -> dict[int, object]:
        if "labels" in self.model_fields_set:
            return dict(enumerate(self.labels))
        return {self.row: self.label}

    @classmethod
    def parse(cls, obj: object) -> FeedbackRequest:
        """``obj`` (parsed JSON) as a request; a 422 RequestError naming the first problem."""
        if not isinstance(obj, dict):
            raise RequestError(422, f"body must be a JSON object, got {json_type(obj)}")
        try:
            return cls.model_validate(obj)
        except ValidationError as e:
            raise RequestError(422, _feedback_error(e, obj)) from None


# the message for a field pydantic rejected ({got}: the JSON type sent)
_FIELD_ERRORS = {
    "request_id": "field 'request_id' must be a non-empty string, got {got}",
    "row": "field 'row' must be an integer, got {got}",
    "labels": "field 'labels' must be a non-empty array",
}


def _form_problem(given: set[str]) -> str | None:
    """What is wrong with the set of fields given, if anything."""
    if ("label" in given) == ("labels" in given):
        return "give exactly one of 'label' (with optional 'row') or 'labels' (one per row)"
    if "labels" in given and "row" in given:
        return "'row' goes with 'label', not with 'labels'"
    return None


def _feedback_error(e: ValidationError, obj: dict) -> str:
    """The one problem the 422 names: unknown fields, then the request id, then the form
    (which pydantic checks only once the fields are valid), then the other fields."""
    errors = e.errors()
    unknown = sorted(str(err["loc"][0]) for err in errors if err["type"] == "extra_forbidden")
    if unknown:
        return f"unknown field(s) {unknown}: expected request_id and label (or labels)"
    failed = {err["loc"][0] for err in errors if err["loc"]}
    if "request_id" in failed:
        return _FIELD_ERRORS["request_id"].format(got=json_type(obj.get("request_id")))
    problem = _form_problem(set(obj))
    if problem:
        return problem
    for name, message in _FIELD_ERRORS.items():
        if name in failed:
            return message.format(got=json_type(obj.get(name)))
    return errors[0]["msg"]


def match_label(label: object, classes: list) -> object:
    """``label`` as one of ``classes`` ("1" matches 1 and the reverse); RequestError if none."""
    if isinstance(label, bool) or not isinstance(label, str | int | float) or label is None:
        raise RequestError(422, f"field 'label' must be a string or number, got {json_type(label)}")
    for c in classes:
        if not isinstance(c, bool) and c == label:
            return c
    s = str(label)
    for c in classes:
        if str(c) == s:
            return c
    raise RequestError(422, f"label {label!r} is not one of the model's classes {list(classes)}")


def number_label(label: object, field: str = "label") -> float:
    """A regression label: a finite JSON number (not a bool, not a numeric string); RequestError
    naming ``field`` otherwise."""
    if isinstance(label, bool) or not isinstance(label, int | float):
        raise RequestError(422, f"field '{field}' must be a number (a regression target), got {json_type(label)}")
    try:
        value = float(label)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise RequestError(422, f"field '{field}' must be a finite number, got {label!r}")
    return value


class FeedbackStore:
    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple] = OrderedDict()
        self._classes: dict[str, tuple | None] = {}  # version -> the model's classes (None: regression)

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, request_id: str, version: str, labels: list, classes) -> None:
        """What ``version`` answered ``request_id``: labels and the model's classes, or, for a
        regression model, its numbers and ``classes=None``."""
        entry = (len(labels), 0, version, tuple(labels))
        classes = classes if classes is None or type(classes) is tuple else tuple(classes)
        with self._lock:
            if self._classes.get(version, _UNSET) != classes:
                self._classes[version] = classes
            self._entries[request_id] = entry
            self._entries.move_to_end(request_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def record_shadow(self, request_id: str, version: str, labels: list) -> None:
        with self._lock:
            e = self._entries.get(request_id)
            if e is not None and len(labels) == e[_N]:
                self._entries[request_id] = (*e, version, tuple(labels))

    def resolve(self, request_id: str, labels: dict[int, object], field: str = "label") -> list[tuple[str, object]]:
        """Mark rows of ``request_id`` as labelled; (version, correct) for each model and row, or,
        when the request was answered by a regression model, (version, prediction - label).

        404 for an unknown (or evicted) request, 409 for a row already labelled, 422 for a label
        that is not one of the classes (not a number, for regression; ``field`` names it)."""
        with self._lock:
            e = self._entries.get(request_id)
            if e is None:
                raise RequestError(404, f"unknown request_id {request_id!r} (never served, or evicted)")
            n_rows, answered = e[_N], e[_ANSWERED]
            classes = self._classes[e[_PREDS]]
            for row in labels:
                if not 0 <= row < n_rows:
                    raise RequestError(
                        422, f"row {row} out of range: request {request_id!r} had {n_rows} row(s)"
                    )
                if answered >> row & 1:
                    raise RequestError(409, f"row {row} of request {request_id!r} already has feedback")
            if classes is None:
                many = field == "labels"
                matched = {row: number_label(lab, f"labels[{row}]" if many else field) for row, lab in labels.items()}
            else:
                matched = {row: match_label(lab, list(classes)) for row, lab in labels.items()}
            for row in matched:
                answered |= 1 << row
            self._entries[request_id] = (n_rows, answered, *e[_PREDS:])
            out = []
            for version, labs in zip(e[_PREDS::2], e[_PREDS + 1::2], strict=True):
                for row, truth in matched.items():
                    if classes is None:
                        out.append((version, float(labs[row]) - truth))
                    else:
                        out.append((version, bool(labs[row] == truth)))
            return out
