"""One forward for the single rows of concurrent requests (ratchet.serving.state.forward_all): each
request still gets exactly its own answer or its own error."""

from __future__ import annotations

import numpy as np

from ratchet.serving.state import ModelFailure, Slot, forward_all, run_steps
from ratchet.serving.validation import RequestError

from .helpers import mixed_rows, ratchet_predictor


def _same(got, want) -> None:
    """The same labels; the same probabilities to float rounding (a forward of several rows may take
    another BLAS kernel than one of a single row: on one machine they parted at the 9th digit)."""
    labels, proba, top = got
    assert labels == want[0]
    np.testing.assert_allclose(proba, want[1], atol=1e-6)
    np.testing.assert_allclose(top, want[2], atol=1e-6)


def test_each_request_gets_what_its_own_forward_gives_across_two_models():
    one, two = Slot.of(ratchet_predictor("1")), Slot.of(ratchet_predictor("2"))
    assert one.fast.rows is not None and two.fast.rows is not None
    rows = mixed_rows(9, seed=4, messy=True)
    needs = [((one, two)[i % 2], one.validator.validate([r])) for i, r in enumerate(rows[:6])]
    needs.append((one, one.validator.validate(rows[6:9])))  # three rows: a forward of its own
    calls = []
    for slot in (one, two):
        real = slot.fast.predict_rows
        slot.fast.predict_rows = lambda each, real=real: calls.append(len(each)) or real(each)
    results = forward_all(needs)
    assert sorted(calls) == [3, 3]  # each model's three one-row requests: one forward each
    for (slot, batch), got in zip(needs, results, strict=True):
        _same(got, slot.predict_scored(batch))


def test_a_failed_shared_forward_predicts_each_alone_and_the_unscorable_row_gets_its_own_422():
    slot = Slot.of(ratchet_predictor("1"))
    rows = mixed_rows(4, seed=6, messy=False)
    rows[2] = dict(rows[2], a=1.7976931348623155e308)  # finite JSON, beyond any float32 network
    needs = [(slot, slot.validator.validate([r])) for r in rows]
    results = forward_all(needs)  # the shared forward gives a non-finite row: each alone
    assert isinstance(results[2], RequestError) and results[2].status == 422 and "rows[0].a" in str(results[2])
    for i in (0, 1, 3):
        _same(results[i], slot.predict_scored(needs[i][1]))

    def broken(each):
        raise ValueError("boom")

    slot.fast.predict_rows = broken  # the batched forward itself raises: still every answer
    results = forward_all([needs[0], needs[1]])
    for i in (0, 1):
        _same(results[i], slot.predict_scored(needs[i][1]))


def test_a_request_s_steps_are_thrown_what_its_forward_raised():
    slot = Slot.of(ratchet_predictor("1"))
    batch = slot.validator.validate(mixed_rows(1, seed=2, messy=False))
    seen = []

    def steps():
        try:
            yield slot, batch
        except ModelFailure as e:
            seen.append(e)
            return "fell back"
        return "answered"

    assert run_steps(steps()) == "answered"
    slot.fast.rows = None
    slot.fast.predict_proba = lambda columns, n: np.full((n, 2), np.nan)  # a wrong shape: ModelFailure
    assert run_steps(steps()) == "fell back" and len(seen) == 1


def test_a_regression_model_s_shared_forward_gives_each_request_its_number():
    from tests.serving.helpers import REGRESSION_SCHEMA, family_predictor

    slot = Slot.of(family_predictor("tabm", REGRESSION_SCHEMA))
    assert slot.regression and slot.fast.rows is not None
    rows = [{k: r[k] for k in REGRESSION_SCHEMA.feature_names} for r in mixed_rows(5, seed=9, messy=True)]
    needs = [(slot, slot.validator.validate([r])) for r in rows]
    shared = slot.predict_rows([b for _, b in needs])
    assert [s[1] for s in shared] == [None] * 5 and all(len(s[0]) == 1 for s in shared)
    for (_, batch), got, result in zip(needs, shared, forward_all(needs), strict=True):
        alone = slot.predict_scored(batch)
        np.testing.assert_allclose(got[0], alone[0], rtol=1e-5)
        np.testing.assert_allclose(result[0], alone[0], rtol=1e-5)
