"""Bounded map request_id -> what each model predicted, for live accuracy."""

from __future__ import annotations

import threading
from collections import OrderedDict

from ratchet.serving.validation import RequestError, json_type

# An entry is a flat immutable tuple (n_rows, answered, version, labels, version, labels, ...):
# ``answered`` a bitmask of rows that got feedback, then (version, labels) per model, the served
# one first (a shadow's after it); classes are kept per version. Tuples of strings and numbers
# are untracked by Python's cyclic GC once a collection has looked at them, which for a tuple
# holding tuples takes one collection per level of nesting: flat, an entry is untracked
# before it reaches the oldest generation, so 100,000 entries add nothing to a full collection.
_N, _ANSWERED, _PREDS = 0, 1, 2


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


class FeedbackStore:
    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple] = OrderedDict()
        self._classes: dict[str, tuple] = {}  # version -> the model's classes

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, request_id: str, version: str, labels: list, classes) -> None:
        entry = (len(labels), 0, version, tuple(labels))
        classes = classes if type(classes) is tuple else tuple(classes)
        with self._lock:
            if self._classes.get(version) != classes:
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

    def resolve(self, request_id: str, labels: dict[int, object]) -> list[tuple[str, bool]]:
        """Mark rows of ``request_id`` as labelled; (version, correct) for each model and row.

        404 for an unknown (or evicted) request, 409 for a row already labelled."""
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
            matched = {row: match_label(lab, list(classes)) for row, lab in labels.items()}
            for row in matched:
                answered |= 1 << row
            self._entries[request_id] = (n_rows, answered, *e[_PREDS:])
            out = []
            for version, labs in zip(e[_PREDS::2], e[_PREDS + 1::2], strict=True):
                for row, truth in matched.items():
                    out.append((version, labs[row] == truth))
            return out
