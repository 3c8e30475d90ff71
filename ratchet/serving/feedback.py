"""Bounded map request_id -> what each model predicted, for live accuracy."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from ratchet.serving.validation import RequestError, json_type


@dataclass
class _Entry:
    n_rows: int
    classes: list
    preds: list[tuple[str, list]] = field(default_factory=list)  # (version, labels); served first
    answered: set = field(default_factory=set)  # rows that got feedback


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
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, request_id: str, version: str, labels: list, classes: list) -> None:
        with self._lock:
            self._entries[request_id] = _Entry(
                n_rows=len(labels), classes=list(classes), preds=[(version, labels)]
            )
            self._entries.move_to_end(request_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def record_shadow(self, request_id: str, version: str, labels: list) -> None:
        with self._lock:
            e = self._entries.get(request_id)
            if e is not None and len(labels) == e.n_rows:
                e.preds.append((version, labels))

    def resolve(self, request_id: str, labels: dict[int, object]) -> list[tuple[str, bool]]:
        """Mark rows of ``request_id`` as labelled; (version, correct) for each model and row.

        404 for an unknown (or evicted) request, 409 for a row already labelled."""
        with self._lock:
            e = self._entries.get(request_id)
            if e is None:
                raise RequestError(404, f"unknown request_id {request_id!r} (never served, or evicted)")
            for row in labels:
                if not 0 <= row < e.n_rows:
                    raise RequestError(
                        422, f"row {row} out of range: request {request_id!r} had {e.n_rows} row(s)"
                    )
                if row in e.answered:
                    raise RequestError(409, f"row {row} of request {request_id!r} already has feedback")
            matched = {row: match_label(lab, e.classes) for row, lab in labels.items()}
            e.answered.update(matched)
            out = []
            for version, preds in e.preds:
                for row, truth in matched.items():
                    out.append((version, preds[row] == truth))
            return out
