"""The service's other endpoints (``/feedback``, health, metrics, stats, admin) and the
exception handlers that give every error raised under FastAPI's router ratchet's JSON
shape ``{"detail", "request_id"}``. ``POST /predict`` is :mod:`ratchet.serving.predict`.

:class:`ServiceRoutes`' methods are the FastAPI endpoints (``create_app`` registers them).
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from ratchet.core.config import ServingConfig
from ratchet.serving.feedback import FeedbackRequest
from ratchet.serving.middleware import (
    Auth,
    client_error_response,
    model_error_response,
    read_json_body,
    request_id_of,
)
from ratchet.serving.state import ModelFailure, ServingRuntime, Snapshot
from ratchet.serving.traffic_split import Traffic
from ratchet.serving.validation import RequestError

log = logging.getLogger(__name__)

ADMIN_BODY_LIMIT = 64 * 1024


def _traffic_json(snap: Snapshot) -> dict:
    return snap.traffic.to_dict()


class ServiceRoutes:
    """Every endpoint but ``/predict``, over the serving runtime."""

    def __init__(self, runtime: ServingRuntime, cfg: ServingConfig, auth: Auth):
        self.runtime = runtime
        self.cfg = cfg
        self.auth = auth

    async def _started(self) -> None:
        if not self.runtime.is_started:
            await run_in_threadpool(self.runtime.ensure_started)

    # ------------------------------------------------------------ feedback
    async def feedback(self, request: Request):
        self.auth.check_api_key(request.headers)
        obj = await read_json_body(request.headers, request.receive, self.cfg.max_body_bytes)
        body = FeedbackRequest.parse(obj)
        labels = body.labels_by_row
        rt = self.runtime
        outcomes = rt.feedback.resolve(body.request_id, labels, body.label_field)
        per_version: dict[str, dict] = {}
        errors: dict[str, list[float]] = {}  # regression: prediction - label, per version
        for version, outcome in outcomes:
            if type(outcome) is bool:
                rt.metrics.observe_feedback(version, outcome)
                d = per_version.setdefault(version, {"correct": 0, "total": 0})
                d["correct"] += outcome
                d["total"] += 1
            else:
                errors.setdefault(version, []).append(outcome)
        for version, errs in errors.items():
            rt.metrics.observe_feedback_errors(version, errs)
            per_version[version] = {
                "total": len(errs), "mae": sum(abs(e) for e in errs) / len(errs),
                "rmse": (sum(e * e for e in errs) / len(errs)) ** 0.5,
            }
        return {"request_id": body.request_id, "rows": len(labels), "versions": per_version}

    # ------------------------------------------------------------ health & metrics
    async def health(self):
        await self._started()
        rt = self.runtime
        snap = rt.snapshot
        return {
            "status": "ok",
            "ready": snap.ready,
            **snap.versions(),
            "traffic": _traffic_json(snap),
            "last_error": rt.last_error,
        }

    async def ready(self):
        await self._started()
        snap = self.runtime.snapshot
        body = {"ready": snap.ready, **snap.versions()}
        return JSONResponse(body, status_code=200 if snap.ready else 503)

    async def metrics(self):
        return Response(generate_latest(self.runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def stats(self):
        rt = self.runtime
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
    async def admin_reload(self, request: Request, force: bool = False):
        self.auth.check_admin(request.headers)
        rt = self.runtime
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

    async def admin_traffic(self, request: Request):
        self.auth.check_admin(request.headers)
        rt = self.runtime
        obj = await read_json_body(request.headers, request.receive, ADMIN_BODY_LIMIT)
        if not isinstance(obj, dict) or "challenger_share" not in obj:
            raise RequestError(422, 'body must be {"challenger_share": <0..1>, "shadow": <bool, optional>}')
        merged = {"shadow": rt.snapshot.traffic.shadow, **obj}
        try:
            traffic = Traffic.from_dict(merged)
        except ValueError as e:
            raise RequestError(422, str(e)) from None
        try:
            await run_in_threadpool(rt.set_traffic, traffic)
        except OSError as e:  # a full or read-only home: the traffic stays as it was
            raise RequestError(503, f"traffic not changed: cannot write {e.filename or rt.traffic_path}: "
                               f"{e.strerror or e}") from None
        snap = rt.snapshot
        return {"traffic": _traffic_json(snap), **snap.versions()}


# ---------------------------------------------------------------- exception handlers
async def on_client_error(request: Request, exc: RequestError):
    return client_error_response(exc, request_id_of(request.scope))


async def on_http_error(request: Request, exc: StarletteHTTPException):
    # 404/405 from routing: same body shape as every other client error
    body = {"detail": str(exc.detail), "request_id": request_id_of(request.scope)}
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def on_validation_error(request: Request, exc: RequestValidationError):
    # query parameters (e.g. ?force=maybe on /admin/reload)
    errors = [
        {"row": None, "field": ".".join(str(p) for p in e.get("loc", ())), "error": e.get("msg", "")}
        for e in exc.errors()
    ]
    shown = "; ".join(f"{e['field']}: {e['error']}" for e in errors[:5])
    body = {"detail": f"invalid request: {shown}", "errors": errors, "request_id": request_id_of(request.scope)}
    return JSONResponse(body, status_code=422)


async def on_model_failure(request: Request, exc: ModelFailure):
    return model_error_response(request.state.request_id)


EXCEPTION_HANDLERS = {
    RequestError: on_client_error,
    StarletteHTTPException: on_http_error,
    RequestValidationError: on_validation_error,
    ModelFailure: on_model_failure,
}
