"""The FastAPI app: ``create_app(provider, cfg, state_dir)``.

Routes
------
``POST /predict``      ``{"rows": [{col: value, ...}, ...], "entity_key": "optional"}`` or
                       ``{"row": {col: value, ...}, "entity_key": "optional"}`` (same response
                       shape either way). Needs ``X-API-Key`` when ``api_key`` is set. Answer:
                       ``{"predictions": [label, ...], "probabilities": [[p, ...], ...],
                       "classes": [...], "model_version": "3", "alias": "champion"|"challenger",
                       "request_id": "..."}`` with headers ``X-Request-ID`` (the caller's, echoed,
                       when it sent a sane one) and ``X-Model-Version``. Client errors: 400 (not
                       JSON), 401/403 (API key), 413 (body > max_body_bytes or rows > max_rows),
                       415 (not ``application/json``), 422 (schema: ``errors`` lists row and field);
                       503 while no champion is loaded.
``POST /feedback``     ``{"request_id": "...", "label": x}`` (row 0, or ``"row": i``) or
                       ``{"request_id": "...", "labels": [x, ...]}`` (one per row). API key as /predict.
``GET  /health``       always 200 while the process lives; ``ready``, versions, traffic.
``GET  /ready``        200 once a champion is loaded, else 503.
``GET  /metrics``      Prometheus text (this app's own registry).
``GET  /stats``        JSON per model version, counters since start: requests answered, routed,
                       errors, server errors, fallbacks (challenger failures the champion
                       answered), shadow requests/errors, rows, predicted classes, feedback,
                       live accuracy, p50/p99 latency (ms, last 4096 requests) and a latency
                       histogram (``latency_bounds_ms``) that the canary diffs between reads;
                       which loaded versions run on the fast path.
``GET  /openapi.json`` the request body of ``/predict`` typed by the loaded champion's schema.
``POST /admin/reload`` re-read traffic.json, reload models whose alias moved (``?force=true``:
                       reload both). 502 when the provider failed (old models keep serving).
``PUT  /admin/traffic`` ``{"challenger_share": 0.3, "shadow": false}`` (``shadow`` optional:
                       unchanged); written atomically to ``state_dir/traffic.json``.
Admin routes need ``Authorization: Bearer <admin_token>`` when a token is set: 401 without
one, 403 with a wrong one.

Every response carries ``X-Request-ID`` and ``X-Model-Version`` (the version that answered,
else the loaded champion's, else ``none``); every client error is JSON ``{"detail", "request_id"}``
(plus ``errors`` for field errors). Requests of at most ``serving.inline_max_rows`` rows whose
models have a fast path (see :mod:`ratchet.serving.fastpath`) are predicted on the event loop;
others in a worker thread. ``POST /predict`` is answered by the outermost middleware itself,
without FastAPI's router and dependency layer (which cost more than a single-row prediction);
the FastAPI route runs the same handler and carries the OpenAPI description. The answer is
rendered with orjson.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ratchet.core.config import ServingConfig
from ratchet.serving.model_api import ModelProvider
from ratchet.serving.openapi import build_openapi
from ratchet.serving.routing import Traffic, selects_challenger
from ratchet.serving.state import ModelFailure, ServingRuntime, Slot, Snapshot
from ratchet.serving.validation import (
    PredictRequest,
    RequestError,
    ValidatedBatch,
    json_type,
    parse_json,
    parse_predict_body,
)

try:  # a tenth of the stdlib encoder's time for the /predict answer
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency
    orjson = None

log = logging.getLogger(__name__)

_REQUEST_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces
# request ids: a random per-process prefix and a counter (unique without a syscall per request;
# uuid4 reads os.urandom, which is slow on a busy machine)
_RID_PREFIX = uuid.uuid4().hex[:16]
_RID_COUNTER = itertools.count(1)


def _new_request_id() -> str:
    return f"{_RID_PREFIX}{next(_RID_COUNTER):016x}"

ADMIN_BODY_LIMIT = 64 * 1024

__all__ = ["ModelFailure", "create_app"]


# ---------------------------------------------------------------- middleware
class _ObserveMiddleware:
    """Request id on every response; request count/latency/errors per route and version;
    any unhandled exception becomes a JSON 500 (the service keeps serving). Routes in ``direct``
    are answered here."""

    def __init__(self, app, runtime: ServingRuntime, direct: dict | None = None):
        self.app = app
        self.runtime = runtime
        # (method, path) -> async (scope, receive) -> Response: served here, without FastAPI's
        # routing and dependency layers (on a single-row /predict they cost more than the model)
        self.direct = direct if direct is not None else {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        direct = self.direct.get((scope["method"], scope["path"]))
        sent = Headers(scope=scope).get("x-request-id")
        rid = sent if sent is not None and _REQUEST_ID_RE.match(sent) else _new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        status = [500, False]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0], status[1] = message["status"], True
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers["X-Request-ID"] = rid
                if "x-model-version" not in headers:  # the version that answered, else the champion
                    version = state.get("model_version")
                    if version is None:
                        champion = self.runtime.snapshot.champion
                        version = champion.version if champion is not None else "none"
                    headers["X-Model-Version"] = version
            await send(message)

        t0 = time.perf_counter()
        try:
            if direct is not None:
                response = await direct(scope, receive)
                await response(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not status[1]:
                resp = JSONResponse(
                    {"detail": "internal error", "request_id": rid},
                    status_code=500,
                    headers={"X-Request-ID": rid},
                )
                await resp(scope, receive, send)
            status[0] = 500
        finally:
            route = scope.get("route")
            path = scope["path"] if direct is not None else getattr(route, "path", None) or "other"
            self.runtime.metrics.observe_request(
                path, scope.get("method", ""), status[0], state.get("model_version"), time.perf_counter() - t0
            )


# ---------------------------------------------------------------- helpers
class _FastJSONResponse(JSONResponse):
    """JSONResponse rendered by orjson (same compact UTF-8 text); the stdlib encoder for
    anything orjson will not take."""

    def render(self, content) -> bytes:
        if orjson is not None:
            try:
                return orjson.dumps(content)
            except TypeError:
                pass
        return super().render(content)


async def _read_json_body(headers: Headers, receive, limit: int) -> object:
    """The request's JSON body, read straight from the ASGI ``receive`` (4xx as RequestError)."""
    ctype = headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise RequestError(415, f"Content-Type must be application/json, got {ctype or 'none'!r}")
    length = headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise RequestError(400, f"bad Content-Length {length!r}") from None
        if declared > limit:
            raise RequestError(413, f"body of {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return parse_json(chunks[0] if len(chunks) == 1 else b"".join(chunks))


async def _read_json(request: Request, limit: int) -> object:
    return await _read_json_body(request.headers, request.receive, limit)


def _client_error_response(exc: RequestError, rid: str | None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({**exc.body(), "request_id": rid}, status_code=exc.status, headers=headers)


def _model_error_response(rid: str | None) -> JSONResponse:
    return JSONResponse({"detail": "the model failed on this input", "request_id": rid}, status_code=500)


def _check_secret(given: str | None, expected: str, what: str) -> None:
    if not given:
        raise RequestError(401, f"missing {what}")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise RequestError(403, f"wrong {what}")


def _traffic_json(snap: Snapshot) -> dict:
    return snap.traffic.to_dict()


# ---------------------------------------------------------------- app
def create_app(
    provider: ModelProvider,
    cfg: ServingConfig,
    state_dir: Path,
    *,
    admin_token: str | None = None,
    api_key: str | None = None,
    watch_interval_s: float | None = 1.0,
    profile_window_s: float | None = None,
    feedback_capacity: int = 100_000,
    profile_process: bool = False,
) -> FastAPI:
    """Build the serving app. ``profile_window_s`` defaults to ``cfg.profile_window_s``.

    Nothing is loaded here: models load in the lifespan (or on
    the first request when the app runs without one). ``app.state.ratchet`` is the
    :class:`ServingRuntime` (``flush()``, ``reload()``, ``snapshot``, ``metrics``).
    ``profile_process``: whylogs runs in a worker process rather than a thread of this one
    (what ``python -m ratchet.serving`` does: the event loop never waits on the GIL for it)."""
    rt = ServingRuntime(
        provider,
        cfg,
        Path(state_dir),
        watch_interval_s=watch_interval_s,
        profile_window_s=profile_window_s or getattr(cfg, "profile_window_s", 3600.0),
        feedback_capacity=feedback_capacity,
        profile_process=profile_process,
    )
    if not admin_token:
        log.warning("no admin token: /admin routes are open to anyone who can reach the server")

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await run_in_threadpool(rt.ensure_started)
        try:
            yield
        finally:
            await run_in_threadpool(rt.stop)

    app = FastAPI(title="ratchet serving", lifespan=lifespan)
    app.state.ratchet = rt
    direct: dict = {}  # filled below: routes the middleware serves itself
    app.state.direct_routes = direct
    app.add_middleware(_ObserveMiddleware, runtime=rt, direct=direct)

    @app.exception_handler(RequestError)
    async def _client_error(request: Request, exc: RequestError):
        return _client_error_response(exc, request.scope.get("state", {}).get("request_id"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        # 404/405 from routing: same body shape as every other client error
        body = {"detail": str(exc.detail), "request_id": request.scope.get("state", {}).get("request_id")}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        # query parameters (e.g. ?force=maybe on /admin/reload)
        errors = [
            {"row": None, "field": ".".join(str(p) for p in e.get("loc", ())), "error": e.get("msg", "")}
            for e in exc.errors()
        ]
        shown = "; ".join(f"{e['field']}: {e['error']}" for e in errors[:5])
        body = {
            "detail": f"invalid request: {shown}",
            "errors": errors,
            "request_id": request.scope.get("state", {}).get("request_id"),
        }
        return JSONResponse(body, status_code=422)

    @app.exception_handler(ModelFailure)
    async def _model_error(request: Request, exc: ModelFailure):
        return _model_error_response(request.state.request_id)

    async def started() -> None:
        if not rt.is_started:
            await run_in_threadpool(rt.ensure_started)

    def require_admin(request: Request) -> None:
        if not admin_token:
            return
        auth = request.headers.get("authorization")
        if not auth:
            raise RequestError(401, "missing Authorization: Bearer <admin token>")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer":
            raise RequestError(401, "Authorization must use the Bearer scheme")
        _check_secret(token.strip(), admin_token, "admin token")

    def require_api_key(request: Request) -> None:
        if api_key:
            _check_secret(request.headers.get("x-api-key"), api_key, "API key (X-API-Key header)")

    def require_api_key_in(headers: Headers) -> None:
        if api_key:
            _check_secret(headers.get("x-api-key"), api_key, "API key (X-API-Key header)")

    # ------------------------------------------------------------ predict
    m = rt.metrics

    def shadow_predict(champion_version: str, slot: Slot, rows: list, rid: str, served: list) -> None:
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
        _count_inputs(slot.version, batch)
        m.observe_predictions(slot.version, "shadow", labels, shadow=True)
        agree = sum(a == b for a, b in zip(labels, served, strict=True))
        if agree:
            m.shadow_comparisons.labels(champion_version, slot.version, "agree").inc(agree)
        if agree < len(labels):
            m.shadow_comparisons.labels(champion_version, slot.version, "disagree").inc(len(labels) - agree)
        rt.profiler.record(slot.version, batch, labels, proba.max(axis=1))
        rt.feedback.record_shadow(rid, slot.version, labels)

    def _count_inputs(version: str, batch: ValidatedBatch) -> None:
        for col, n in batch.unseen_categories.items():
            m.unseen_categories.labels(version, col).inc(n)
        for col, n in batch.out_of_range.items():
            m.out_of_range.labels(version, col).inc(n)

    def predict_sync(req: PredictRequest, state: dict, snap: Snapshot) -> JSONResponse:
        """Route, validate, predict, record. ``snap`` is read once by the caller: a reload
        swapping models does not touch a request in flight."""
        rid = state["request_id"]
        chosen = snap.challenger is not None and selects_challenger(
            snap.traffic.challenger_share, req.entity_key
        )
        canary = chosen and not snap.traffic.shadow
        slot, alias = (snap.challenger, "challenger") if canary else (snap.champion, "champion")
        state["model_version"] = slot.version
        m.observe_routed(slot.version)
        try:
            batch = slot.validator.validate(req.rows)
            labels, proba = slot.predict(batch)
        except (RequestError, ModelFailure) as e:
            if not canary:
                if isinstance(e, ModelFailure):
                    log.error("%s", e)
                    m.observe_model_error(slot.version, alias)
                raise
            # the canary must never fail a request the champion would serve
            if isinstance(e, ModelFailure):
                log.warning("challenger %s; serving the champion", e)
                m.observe_model_error(slot.version, alias)
            challenger_version = slot.version
            slot, alias = snap.champion, "champion"
            state["model_version"] = slot.version
            m.observe_routed(slot.version)
            batch = slot.validator.validate(req.rows)  # a bad request is the champion's 422
            try:
                labels, proba = slot.predict(batch)
            except ModelFailure as e2:
                log.error("%s", e2)
                m.observe_model_error(slot.version, alias)
                raise
            m.observe_fallback(challenger_version, "schema" if isinstance(e, RequestError) else "model_error")
        if batch.unseen_categories or batch.out_of_range:
            _count_inputs(slot.version, batch)
        m.observe_predictions(slot.version, alias, labels)
        rt.profiler.record(slot.version, batch, labels, proba.max(axis=1))
        rt.feedback.record(rid, slot.version, labels, slot.classes)
        if chosen and snap.traffic.shadow:
            if not rt.submit_shadow(shadow_predict, slot.version, snap.challenger, req.rows, rid, labels):
                m.shadow_dropped.labels("queue_full").inc()
        body = {
            "predictions": labels,
            "probabilities": proba.tolist(),
            "classes": list(slot.classes),
            "model_version": slot.version,
            "alias": alias,
            "request_id": rid,
        }
        return _FastJSONResponse(body, headers={"X-Model-Version": slot.version, "X-Model-Alias": alias})

    inline_max_rows = getattr(cfg, "inline_max_rows", 0)

    async def predict_response(scope, receive) -> Response:
        """``POST /predict`` as plain ASGI: the answer, or the client/model error response.
        The middleware calls it directly (see ``direct``); the FastAPI route below is the same
        handler for the OpenAPI document (and any path the middleware does not match)."""
        state = scope["state"]
        try:
            headers = Headers(scope=scope)
            require_api_key_in(headers)
            await started()
            obj = await _read_json_body(headers, receive, cfg.max_body_bytes)
            req = parse_predict_body(obj, cfg.max_rows)
            snap = rt.snapshot
            if snap.champion is None:
                raise RequestError(503, "no champion model is loaded yet")
            if (
                len(req.rows) <= inline_max_rows
                and snap.champion.fast is not None
                and (snap.challenger is None or snap.challenger.fast is not None)
            ):
                # ~0.1 ms of numpy: cheaper on the event loop than a hop to a worker thread and back
                return predict_sync(req, state, snap)
            return await run_in_threadpool(predict_sync, req, state, snap)
        except RequestError as exc:
            return _client_error_response(exc, state.get("request_id"))
        except ModelFailure:
            return _model_error_response(state.get("request_id"))

    direct[("POST", "/predict")] = predict_response

    @app.post("/predict")
    async def predict(request: Request):
        return await predict_response(request.scope, request.receive)

    # ------------------------------------------------------------ feedback
    @app.post("/feedback")
    async def feedback(request: Request):
        require_api_key(request)
        obj = await _read_json(request, cfg.max_body_bytes)
        if not isinstance(obj, dict):
            raise RequestError(422, f"body must be a JSON object, got {json_type(obj)}")
        unknown = sorted(set(obj) - {"request_id", "label", "labels", "row"})
        if unknown:
            raise RequestError(422, f"unknown field(s) {unknown}: expected request_id and label (or labels)")
        rid = obj.get("request_id")
        if not isinstance(rid, str) or not rid:
            raise RequestError(422, f"field 'request_id' must be a non-empty string, got {json_type(rid)}")
        if ("label" in obj) == ("labels" in obj):
            raise RequestError(
                422, "give exactly one of 'label' (with optional 'row') or 'labels' (one per row)"
            )
        if "label" in obj:
            row = obj.get("row", 0)
            if isinstance(row, bool) or not isinstance(row, int):
                raise RequestError(422, f"field 'row' must be an integer, got {json_type(row)}")
            labels = {row: obj["label"]}
        else:
            if "row" in obj:
                raise RequestError(422, "'row' goes with 'label', not with 'labels'")
            if not isinstance(obj["labels"], list) or not obj["labels"]:
                raise RequestError(422, "field 'labels' must be a non-empty array")
            labels = dict(enumerate(obj["labels"]))
        outcomes = rt.feedback.resolve(rid, labels)
        per_version: dict[str, dict] = {}
        for version, correct in outcomes:
            rt.metrics.observe_feedback(version, correct)
            d = per_version.setdefault(version, {"correct": 0, "total": 0})
            d["correct"] += bool(correct)
            d["total"] += 1
        return {"request_id": rid, "rows": len(labels), "versions": per_version}

    # ------------------------------------------------------------ health & metrics
    @app.get("/health")
    async def health():
        await started()
        snap = rt.snapshot
        return {
            "status": "ok",
            "ready": snap.ready,
            **snap.versions(),
            "traffic": _traffic_json(snap),
            "last_error": rt.last_error,
        }

    @app.get("/ready")
    async def ready():
        await started()
        snap = rt.snapshot
        body = {"ready": snap.ready, **snap.versions()}
        return JSONResponse(body, status_code=200 if snap.ready else 503)

    @app.get("/metrics")
    async def metrics():
        return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------ openapi
    openapi_cache: list = [object(), None]  # [champion version it was built for, document]

    def openapi() -> dict:
        champion = rt.snapshot.champion
        key = champion.version if champion is not None else None
        if openapi_cache[0] != key or openapi_cache[1] is None:
            base = get_openapi(title=app.title, version=app.version, routes=app.routes)
            doc = build_openapi(
                base, champion.validator.schema if champion is not None else None, cfg.max_rows,
                api_key=bool(api_key), admin=bool(admin_token),
            )
            openapi_cache[:] = [key, doc]
        return openapi_cache[1]

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/stats")
    async def stats():
        snap = rt.snapshot
        return {
            **snap.versions(),
            "traffic": _traffic_json(snap),
            **rt.metrics.stats(),
            "fast_path": {s.version: s.fast is not None for s in (snap.champion, snap.challenger) if s},
            "profile_pending_rows": rt.profiler.pending_rows,
            "feedback_tracked": len(rt.feedback),
        }

    # ------------------------------------------------------------ admin
    @app.post("/admin/reload")
    async def admin_reload(request: Request, force: bool = False):
        require_admin(request)
        try:
            result = await run_in_threadpool(rt.reload, force)
        except Exception as e:
            log.exception("reload failed")
            return JSONResponse({"detail": f"reload failed: {type(e).__name__}: {e}"}, status_code=502)
        snap = rt.snapshot
        body = {
            "changed": result.changed,
            "errors": result.errors,
            **snap.versions(),
            "traffic": _traffic_json(snap),
        }
        return JSONResponse(body, status_code=200 if result.ok else 502)

    @app.put("/admin/traffic")
    async def admin_traffic(request: Request):
        require_admin(request)
        obj = await _read_json(request, ADMIN_BODY_LIMIT)
        if not isinstance(obj, dict) or "challenger_share" not in obj:
            raise RequestError(422, 'body must be {"challenger_share": <0..1>, "shadow": <bool, optional>}')
        merged = {"shadow": rt.snapshot.traffic.shadow, **obj}
        try:
            traffic = Traffic.from_dict(merged)
        except ValueError as e:
            raise RequestError(422, str(e)) from None
        await run_in_threadpool(rt.set_traffic, traffic)
        snap = rt.snapshot
        return {"traffic": _traffic_json(snap), **snap.versions()}

    return app
