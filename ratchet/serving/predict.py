"""``POST /predict``: route a request to the champion or the challenger, validate, predict, record.

:class:`PredictHandler` holds the serving runtime; calling it with an ASGI ``(scope, receive)``
gives the response (the answer, or a client/model error), which is how
:class:`~ratchet.serving.middleware.ObserveMiddleware` serves the route without FastAPI's
router; :meth:`PredictHandler.predict` is the same handler as a FastAPI endpoint (for the
OpenAPI document, and when the middleware's direct table does not match).

* canary (``shadow=false``): the share picks the model whose answer the caller gets; a
  challenger that rejects the rows or fails falls back to the champion (counted as a fallback),
  so the canary never fails a request the champion would serve;
* shadow (``shadow=true``): the caller gets the champion's answer; the selected requests are
  also predicted by the challenger in the runtime's shadow worker, recorded, not returned.

A regression model's answer is ``predictions`` (a number per row), ``model_version``,
``alias`` and ``request_id``: no ``probabilities`` or ``classes``.

Requests of at most ``serving.inline_max_rows`` rows whose models have a fast path are
predicted on the event loop (~0.1 ms of numpy: cheaper than a hop to a worker thread and back),
and so is their shadow prediction, after the answer is sent; others in a worker thread (and the
shadow thread). The answer is rendered with orjson. Under the service's HTTP protocol
(``ratchet.serving.transport``) such a request is answered by :meth:`PredictHandler.answer`
inside the protocol, without an ASGI task; :meth:`PredictHandler.handle` is the same request
through ASGI.

Where a single-row request's time goes: ``docs/scale.md`` ("Where a single-row /predict spends
its time"), from ``benchmarks/serving_profile.py`` (in process, per part) and py-spy on the
running service: over half in uvicorn, the event loop and the kernel (an empty uvicorn
endpoint's whole request costs ~20 us of CPU), the model's single-row fast path under 10 us, the
rest in parsing, validation, metrics, the profiler and feedback hand-offs and rendering, 1-2 us
each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ratchet.core.config import ServingConfig
from ratchet.serving.middleware import (
    Auth,
    client_error_response,
    headers_of,
    json_body,
    model_error_response,
    read_json_body,
)
from ratchet.serving.state import ModelFailure, ServingRuntime, Slot, Snapshot, Steps, run_steps
from ratchet.serving.traffic_split import selects_challenger
from ratchet.serving.validation import PredictRequest, RequestError, ValidatedBatch, parse_predict_body

try:  # a tenth of the stdlib encoder's time for the /predict answer
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency
    orjson = None

log = logging.getLogger(__name__)


class FastJSONResponse(JSONResponse):
    """JSONResponse rendered by orjson (same compact UTF-8 text; the stdlib encoder for anything
    orjson will not take), its raw headers built directly: starlette's ``init_headers`` costs
    more than orjson's rendering on a single-row answer."""

    # ``request_id`` with ``raw_headers`` naming the model version: the answer carries both ids
    # (``identified``), and ObserveMiddleware.serve_direct has nothing to look for in its headers
    identified = False

    def __init__(self, content, status_code: int = 200, headers: dict[str, str] | None = None,
                 raw_headers: tuple[tuple[bytes, bytes], ...] = (), request_id: str | None = None) -> None:
        self.status_code = status_code
        self.background = None
        body = self.body = self.render(content)
        raw = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json"), *raw_headers]
        if request_id is not None:
            raw.append((b"x-request-id", request_id.encode("latin-1")))
            self.identified = any(name == b"x-model-version" for name, _ in raw_headers)
        if headers:
            raw.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
        self.raw_headers = raw

    def render(self, content) -> bytes:
        if orjson is not None:
            try:
                return orjson.dumps(content)
            except TypeError:
                pass
        return super().render(content)


class PredictHandler:
    """``POST /predict`` over a :class:`ServingRuntime`."""

    def __init__(self, runtime: ServingRuntime, cfg: ServingConfig, auth: Auth):
        self.runtime = runtime
        self.metrics = runtime.metrics
        self.auth = auth
        self.max_body_bytes = cfg.max_body_bytes
        self.max_rows = cfg.max_rows
        self.inline_max_rows = getattr(cfg, "inline_max_rows", 0)

    async def __call__(self, scope, receive) -> Response:
        """``POST /predict`` as plain ASGI: the answer, or the client/model error response."""
        return await self.handle(scope, receive, PREDICT_PROTOCOL)

    def inline(self, scope, body: bytes) -> Steps:
        """``POST /predict`` without ASGI (:meth:`answer`)."""
        return self.answer(scope, body, PREDICT_PROTOCOL)

    async def handle(self, scope, receive, protocol: Protocol, pin: str | None = None) -> Response:
        """One request under ``protocol`` (its body parser, answer and errors; ``/predict``'s or the
        Open Inference Protocol's, :mod:`ratchet.serving.v2`): the same routing, validation,
        limits, model call and records whichever protocol asked. ``pin``: the version that must
        answer (a loaded champion or challenger; 404 otherwise), bypassing the traffic split."""
        state = scope["state"]
        rt = self.runtime
        try:
            headers = headers_of(scope)
            self.auth.check_api_key(headers)
            if not rt.is_started:
                await run_in_threadpool(rt.ensure_started)
            obj = await read_json_body(headers, receive, self.max_body_bytes, protocol.untyped_ok)
            req = protocol.parse(obj, self.max_rows)
            snap = self._loaded_snapshot()
            if self._inline(req, snap):
                return self.predict_sync(req, state, snap, protocol.render, pin, inline=True)
            return await run_in_threadpool(self.predict_sync, req, state, snap, protocol.render, pin)
        except RequestError as exc:
            return protocol.client_error(exc, state.get("request_id"))
        except ModelFailure:
            return protocol.model_error(state.get("request_id"))

    def answer(self, scope, body: bytes, protocol: Protocol, pin: str | None = None) -> Steps:
        """:meth:`handle` of a request whose body is already received whole, on the event loop
        without ASGI (``ObserveMiddleware.serve_inline``): the same checks, routing and answer, as
        steps (:data:`Steps`: the model's forward is the caller's, so that the service's protocol
        can give the single rows of concurrent requests one forward). Their result None leaves the
        request to :meth:`handle` (the ASGI path): models not loaded yet, or rows that go to a
        worker thread (more than ``inline_max_rows``, or a model without a fast path)."""
        if not self.runtime.is_started:
            return None
        state = scope["state"]
        try:
            headers = headers_of(scope)
            self.auth.check_api_key(headers)
            req = protocol.parse(json_body(headers, body, self.max_body_bytes, protocol.untyped_ok), self.max_rows)
            snap = self._loaded_snapshot()
            if not self._inline(req, snap):
                return None
            return (yield from self.predict_steps(req, state, snap, protocol.render, pin, inline=True))
        except RequestError as exc:
            return protocol.client_error(exc, state.get("request_id"))
        except ModelFailure:
            return protocol.model_error(state.get("request_id"))

    def _loaded_snapshot(self) -> Snapshot:
        snap = self.runtime.snapshot
        if snap.champion is None:
            raise RequestError(503, "no champion model is loaded yet")
        return snap

    def _inline(self, req, snap: Snapshot) -> bool:
        """Predicted on the event loop: a few rows, and fast paths for every model they may reach."""
        return (
            len(req.rows) <= self.inline_max_rows
            and snap.champion.fast is not None
            and (snap.challenger is None or snap.challenger.fast is not None)
        )

    async def predict(self, request: Request):
        # the FastAPI endpoint: the same handler (no docstring: it would become the OpenAPI description)
        return await self(request.scope, request.receive)

    def predict_sync(self, req, state: dict, snap: Snapshot, render: Render | None = None,
                     pin: str | None = None, inline: bool = False) -> JSONResponse:
        """:meth:`predict_steps` with its forward run at once."""
        return run_steps(self.predict_steps(req, state, snap, render, pin, inline))

    def predict_steps(self, req, state: dict, snap: Snapshot, render: Render | None = None,
                      pin: str | None = None, inline: bool = False) -> Steps:
        """Route, validate, predict, record; ``render`` makes the body of the answer (``/predict``'s
        by default). The prediction is the one step yielded (``(slot, batch)``; the caller sends
        ``slot.predict_scored(batch)`` back or throws what it raised: :func:`run_steps`, or the
        service's protocol batching concurrent requests, ``ratchet.serving.transport``). ``snap``
        is read once by the caller: a reload swapping models does not touch a request in flight.
        ``inline``: called on the event loop (a few rows, fast paths), where a shadow prediction
        then runs too, after the answer is sent (the response's background): handing it to the
        shadow thread costs more than it (the hop, then the two threads taking turns at the GIL,
        measured at a third of the requests/s)."""
        m, rt = self.metrics, self.runtime
        rid = state["request_id"]
        if pin is not None:
            slot, alias = pinned_slot(snap, pin)
            chosen = canary = False
        else:
            chosen = snap.challenger is not None and selects_challenger(
                snap.traffic.challenger_share, req.entity_key
            )
            canary = chosen and not snap.traffic.shadow
            slot, alias = (snap.challenger, "challenger") if canary else (snap.champion, "champion")
        state["model_version"] = slot.version
        m.observe_routed(slot.version)
        try:
            batch = slot.validator.validate(req.rows)
            labels, proba, confidence = yield slot, batch
        except (RequestError, ModelFailure) as e:
            if not canary:
                if isinstance(e, ModelFailure):
                    log.error("%s", e)
                    m.observe_model_error(slot.version, alias)
                raise
            slot, alias = snap.champion, "champion"
            batch, labels, proba, confidence = self._fall_back(e, snap, req, state)
        if batch.unseen_categories or batch.out_of_range:
            self._count_inputs(slot.version, batch)
        if proba is None:  # a regression model: a number per row, no classes
            m.observe_values(slot.version, alias, len(labels))
            rt.profiler.record(slot.version, batch, labels, _no_confidence(len(labels)))
            rt.feedback.record(rid, slot.version, labels, None)
        else:
            m.observe_predictions(slot.version, alias, labels)
            if slot.calibration is not None:  # the estimate of accuracy without labels
                m.observe_estimated(slot.version, slot.calibration.apply(np.asarray(confidence, dtype=float)))
            rt.profiler.record(slot.version, batch, labels, confidence)
            rt.feedback.record(rid, slot.version, labels, slot.classes)
        body = (render or render_predict)(req, rid, slot, alias, labels, proba)
        response = FastJSONResponse(body, raw_headers=slot_headers(slot, alias), request_id=rid)
        if chosen and snap.traffic.shadow:
            args = (slot.version, snap.challenger, req.rows, rid, labels)
            if inline:
                response.background = _Later(self.shadow_predict, args)
            elif not rt.submit_shadow(self.shadow_predict, *args):
                m.shadow_dropped.labels("queue_full").inc()
        return response

    def _fall_back(self, e: Exception, snap: Snapshot, req: PredictRequest, state: dict) -> tuple:
        """The challenger rejected the rows or failed: the champion answers (a bad request is
        then the champion's 422). (batch, labels, probabilities, top probabilities)."""
        m = self.metrics
        challenger_version = snap.challenger.version
        if isinstance(e, ModelFailure):
            log.warning("challenger %s; serving the champion", e)
            m.observe_model_error(challenger_version, "challenger")
        slot = snap.champion
        state["model_version"] = slot.version
        m.observe_routed(slot.version)
        batch = slot.validator.validate(req.rows)
        try:
            labels, proba, confidence = slot.predict_scored(batch)
        except ModelFailure as e2:
            log.error("%s", e2)
            m.observe_model_error(slot.version, "champion")
            raise
        m.observe_fallback(challenger_version, "schema" if isinstance(e, RequestError) else "model_error")
        return batch, labels, proba, confidence

    def shadow_predict(self, champion_version: str, slot: Slot, rows: list, rid: str, served: list) -> None:
        """The challenger on a request the champion answered (in the shadow worker): recorded,
        compared with the served answer, never returned."""
        m, rt = self.metrics, self.runtime
        m.observe_routed(slot.version, shadow=True)
        try:
            batch = slot.validator.validate(rows)
        except RequestError:
            m.shadow_dropped.labels("schema").inc()
            return
        try:
            labels, proba = slot.predict(batch)
        except ModelFailure as e:
            log.warning("shadow %s", e)
            m.observe_model_error(slot.version, "shadow")
            m.shadow_dropped.labels("model_error").inc()
            return
        self._count_inputs(slot.version, batch)
        if proba is None:  # regression: numbers seldom agree exactly; the feedback compares errors
            m.observe_values(slot.version, "shadow", len(labels), shadow=True)
            rt.profiler.record(slot.version, batch, labels, _no_confidence(len(labels)))
            rt.feedback.record_shadow(rid, slot.version, labels)
            return
        m.observe_predictions(slot.version, "shadow", labels, shadow=True)
        agree = sum(a == b for a, b in zip(labels, served, strict=True))
        if agree:
            m.shadow_comparisons.labels(champion_version, slot.version, "agree").inc(agree)
        if agree < len(labels):
            m.shadow_comparisons.labels(champion_version, slot.version, "disagree").inc(len(labels) - agree)
        confidence = proba.max(axis=1)
        if slot.calibration is not None:
            m.observe_estimated(slot.version, slot.calibration.apply(confidence))
        rt.profiler.record(slot.version, batch, labels, confidence)
        rt.feedback.record_shadow(rid, slot.version, labels)

    def _count_inputs(self, version: str, batch: ValidatedBatch) -> None:
        m = self.metrics
        for col, n in batch.unseen_categories.items():
            m.unseen_categories.labels(version, col).inc(n)
        for col, n in batch.out_of_range.items():
            m.out_of_range.labels(version, col).inc(n)


class _Later:
    """``fn(*args)`` as a response's background (awaited after the answer is sent)."""

    __slots__ = ("fn", "args")

    def __init__(self, fn: Callable, args: tuple):
        self.fn, self.args = fn, args

    async def __call__(self) -> None:
        self.fn(*self.args)


def render_predict(req: PredictRequest, rid: str, slot: Slot, alias: str, labels: list,
                   proba: np.ndarray | None) -> dict:
    """``/predict``'s answer."""
    if proba is None:
        return {"predictions": labels, "model_version": slot.version, "alias": alias, "request_id": rid}
    return {
        "predictions": labels,
        "probabilities": proba.tolist(),
        "classes": list(slot.classes),
        "model_version": slot.version,
        "alias": alias,
        "request_id": rid,
    }


# (request, request id, slot, alias, labels, probabilities or None) -> the answer's JSON body
Render = Callable[[Any, str, Slot, str, list, "np.ndarray | None"], dict]


@dataclass(frozen=True)
class Protocol:
    """How one protocol reads a request and writes its answer and errors: ``parse(obj, max_rows)``
    gives an object with ``rows`` (a list of dicts, what the validator takes) and ``entity_key``."""

    parse: Callable[[object, int], Any]
    render: Render
    client_error: Callable[[RequestError, str | None], Response] = client_error_response
    model_error: Callable[[str | None], Response] = model_error_response
    untyped_ok: bool = False  # a body without Content-Type is read as JSON


PREDICT_PROTOCOL = Protocol(parse=parse_predict_body, render=render_predict)


def slot_headers(slot: Slot, alias: str) -> tuple[tuple[bytes, bytes], ...]:
    """``X-Model-Version`` and ``X-Model-Alias`` of an answer, encoded once per slot and alias."""
    key = (slot.version, alias)
    hit = _SLOT_HEADERS.get(key)
    if hit is None:
        if len(_SLOT_HEADERS) > 64:
            _SLOT_HEADERS.clear()
        hit = _SLOT_HEADERS[key] = ((b"x-model-version", slot.version.encode("latin-1")),
                                    (b"x-model-alias", alias.encode("latin-1")))
    return hit


_SLOT_HEADERS: dict[tuple[str, str], tuple] = {}


def pinned_slot(snap: Snapshot, version: str) -> tuple[Slot, str]:
    """The loaded model of ``version`` and its alias; a 404 naming the loaded versions otherwise."""
    for slot, alias in ((snap.champion, "champion"), (snap.challenger, "challenger")):
        if slot is not None and slot.version == version:
            return slot, alias
    loaded = [s.version for s in (snap.champion, snap.challenger) if s is not None]
    raise RequestError(404, f"version {version!r} is not loaded here (loaded: {', '.join(loaded) or 'none'})")


def _no_confidence(n: int) -> np.ndarray:
    """The profiler's ``prediction_confidence`` for a regression model's rows: NaN (no probability)."""
    return np.full(n, np.nan)
