"""The FastAPI app: ``create_app(provider, cfg, state_dir)``.

Routes
------
``POST /predict``      ``{"rows": [{col: value, ...}, ...], "entity_key": "optional"}`` or
                       ``{"row": {col: value, ...}, "entity_key": "optional"}`` (same response
                       shape either way). Needs ``X-API-Key`` when ``api_key`` is set. Answer:
                       ``{"predictions": [label, ...], "probabilities": [[p, ...], ...],
                       "classes": [...], "model_version": "3", "alias": "champion"|"challenger",
                       "request_id": "..."}`` (a regression model: ``{"predictions": [number, ...],
                       "model_version", "alias", "request_id"}``) with headers ``X-Request-ID`` (the caller's, echoed,
                       when it sent a sane one) and ``X-Model-Version``. Client errors: 400 (not
                       JSON), 401/403 (API key), 413 (body > max_body_bytes or rows > max_rows),
                       415 (not ``application/json``), 422 (schema: ``errors`` lists row and field);
                       503 while no champion is loaded.
``POST /feedback``     ``{"request_id": "...", "label": x}`` (row 0, or ``"row": i``) or
                       ``{"request_id": "...", "labels": [x, ...]}`` (one per row; a number for a
                       regression model: live MAE/RMSE in /stats). API key as /predict.
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
``/v2/...``            the Open Inference Protocol (KServe V2) over REST: health, metadata and
                       ``POST /v2/models/{model_name}/infer`` through ``/predict``'s code path
                       (:mod:`ratchet.serving.v2`).
Admin routes need ``Authorization: Bearer <admin_token>`` when a token is set: 401 without
one, 403 with a wrong one.

Every response carries ``X-Request-ID`` and ``X-Model-Version`` (the version that answered,
else the loaded champion's, else ``none``); every client error is JSON ``{"detail", "request_id"}``
(plus ``errors`` for field errors). ``POST /predict`` (and the V2 infer) is answered by
:class:`ServingApp` before FastAPI's own stack (its telemetry and error middleware, router and
dependency layer cost more than a single-row prediction), through the same
:class:`~ratchet.serving.middleware.ObserveMiddleware` as every other route; the FastAPI route
runs the same handler and carries the OpenAPI description.

Where things are: this module assembles the app (runtime, lifespan, middleware, exception
handlers, the route table, the OpenAPI document); :mod:`ratchet.serving.middleware` the ASGI
layer (request ids, metrics, the direct routes, credentials, body reading);
:mod:`ratchet.serving.predict` ``/predict`` (champion/challenger routing, shadow, fallback);
:mod:`ratchet.serving.routes` the other endpoints and the error handlers.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool

from ratchet.core.config import ServingConfig
from ratchet.serving.middleware import Auth, ObserveMiddleware
from ratchet.serving.model_api import ModelProvider
from ratchet.serving.openapi import build_openapi
from ratchet.serving.predict import PredictHandler
from ratchet.serving.routes import EXCEPTION_HANDLERS, ServiceRoutes
from ratchet.serving.state import ModelFailure, ServingRuntime
from ratchet.serving.v2 import V2Protocol

log = logging.getLogger(__name__)

__all__ = ["ModelFailure", "create_app"]


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
    model_name: str = "ratchet",
) -> FastAPI:
    """Build the serving app. ``profile_window_s`` defaults to ``cfg.profile_window_s``.

    Nothing is loaded here: models load in the lifespan (or on
    the first request when the app runs without one). ``app.state.ratchet`` is the
    :class:`ServingRuntime` (``flush()``, ``reload()``, ``snapshot``, ``metrics``);
    ``app.state.direct_routes`` the routes the middleware answers itself.
    ``model_name``: the name the Open Inference Protocol serves the model under
    (``/v2/models/{model_name}``, :mod:`ratchet.serving.v2`).
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
    auth = Auth(api_key=api_key, admin_token=admin_token)
    predict = PredictHandler(rt, cfg, auth)
    routes = ServiceRoutes(rt, cfg, auth)
    v2 = V2Protocol(rt, predict, model_name)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await run_in_threadpool(rt.ensure_started)
        try:
            yield
        finally:
            await run_in_threadpool(rt.stop)

    app = ServingApp(title="ratchet serving", lifespan=lifespan)
    app.state.ratchet = rt
    app.state.direct_routes = {("POST", "/predict"): predict, ("POST", v2.infer_path): v2.infer_direct}
    app.add_middleware(ObserveMiddleware, runtime=rt, direct=app.state.direct_routes)
    app.direct = ObserveMiddleware(None, rt, app.state.direct_routes)
    # the service's protocol shares forwards, counting each turn's requests here (ratchet.serving.transport)
    app.inline_batching = rt.metrics.turn_requests if cfg.batch_inline else None
    app.inline_routes = {
        ("POST", "/predict"): app.direct.inline(predict.inline),
        ("POST", v2.infer_path): app.direct.inline(v2.infer_inline),
    }
    for exc_class, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(exc_class, handler)

    app.add_api_route("/predict", predict.predict, methods=["POST"])
    app.add_api_route("/feedback", routes.feedback, methods=["POST"])
    app.add_api_route("/health", routes.health, methods=["GET"])
    app.add_api_route("/ready", routes.ready, methods=["GET"])
    app.add_api_route("/metrics", routes.metrics, methods=["GET"])
    app.add_api_route("/stats", routes.stats, methods=["GET"])
    app.add_api_route("/admin/reload", routes.admin_reload, methods=["POST"])
    app.add_api_route("/admin/traffic", routes.admin_traffic, methods=["PUT"])
    v2.add_routes(app)

    app.openapi = _OpenAPI(app, rt, cfg.max_rows, auth)  # type: ignore[method-assign]
    return app


class ServingApp(FastAPI):
    """FastAPI that answers its direct routes (``app.state.direct_routes``) before its own stack:
    FastAPI's telemetry and error middleware, the router and the dependency layer cost more
    than a single-row prediction (measured with py-spy on the running service). The direct
    route's own :class:`ObserveMiddleware` (``direct``) gives it the request id, the metrics and
    the JSON 500 that every other route gets from the same middleware inside FastAPI's stack."""

    direct: ObserveMiddleware | None = None
    # (method, path) -> (scope, body) -> the steps to the response or None: the direct routes as the
    # service's HTTP protocol answers them without ASGI (ratchet.serving.transport)
    inline_routes: dict = {}
    # a histogram (``observe(requests)``) when the protocol gives concurrent single-row requests one
    # forward, None when each gets its own
    inline_batching = None

    async def __call__(self, scope, receive, send) -> None:
        observe = self.direct
        if observe is not None and scope["type"] == "http":
            route = observe.direct.get((scope["method"], scope["path"]))
            if route is not None:
                return await observe.serve_direct(scope, receive, send, route)
        await super().__call__(scope, receive, send)


class _OpenAPI:
    """``app.openapi``: FastAPI's document with ratchet's bodies, ``/predict``'s typed by the
    loaded champion's schema; rebuilt when the champion changes."""

    def __init__(self, app: FastAPI, runtime: ServingRuntime, max_rows: int, auth: Auth):
        self.app, self.runtime, self.max_rows, self.auth = app, runtime, max_rows, auth
        self._built_for: object = object()  # the champion version the document was built for
        self._doc: dict | None = None

    def __call__(self) -> dict:
        champion = self.runtime.snapshot.champion
        key = champion.version if champion is not None else None
        if self._built_for != key or self._doc is None:
            app = self.app
            base = get_openapi(title=app.title, version=app.version, routes=app.routes)
            self._doc = build_openapi(
                base, champion.validator.schema if champion is not None else None, self.max_rows,
                api_key=bool(self.auth.api_key), admin=bool(self.auth.admin_token),
            )
            self._built_for = key
        return self._doc
