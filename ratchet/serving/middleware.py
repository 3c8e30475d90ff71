"""The ASGI layer around the FastAPI app, and what every route shares below it.

* :class:`ObserveMiddleware`, the outermost layer: a request id and ``X-Model-Version`` on
  every response, request count/latency/errors per route and version, any unhandled
  exception as a JSON 500; the routes in its ``direct`` table (``POST /predict``) it answers
  itself, without FastAPI's router and dependency layer (which cost more than a single-row
  prediction);
* :class:`Auth`: the API key (``X-API-Key``) and the admin token (``Authorization: Bearer``);
  :func:`check_bind`, the admin routes never open on a network;
* :func:`read_json_body`: a JSON body read straight from ASGI ``receive``, with ratchet's
  415/413/400 messages;
* the JSON client-error and model-error responses.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from ratchet.core.files import is_loopback
from ratchet.serving.state import ServingRuntime
from ratchet.serving.validation import RequestError, parse_json

log = logging.getLogger(__name__)

# (scope, receive) -> the response: a route the middleware answers itself
DirectRoute = Callable[[dict, Callable], Awaitable[Response]]

_REQUEST_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces
# request ids: a random per-process prefix and a counter (unique without a syscall per request;
# uuid4 reads os.urandom, which is slow on a busy machine)
_RID_PREFIX = uuid.uuid4().hex[:16]
_RID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_RID_PREFIX}{next(_RID_COUNTER):016x}"


def request_id_of(scope: dict) -> str | None:
    """The id :class:`ObserveMiddleware` gave this request."""
    return scope.get("state", {}).get("request_id")


class ObserveMiddleware:
    """Request id on every response; request count/latency/errors per route and version;
    any unhandled exception becomes a JSON 500 (the service keeps serving). Routes in ``direct``
    are answered here."""

    def __init__(self, app, runtime: ServingRuntime, direct: dict[tuple[str, str], DirectRoute] | None = None):
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
        rid = sent if sent is not None and _REQUEST_ID_RE.match(sent) else new_request_id()
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


# ---------------------------------------------------------------- credentials
def _check_secret(given: str | None, expected: str, what: str) -> None:
    if not given:
        raise RequestError(401, f"missing {what}")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise RequestError(403, f"wrong {what}")


class Auth:
    """The service's two secrets; a check passes when its secret is not set. 401 without the
    credential, 403 with a wrong one (as :class:`RequestError`)."""

    def __init__(self, api_key: str | None = None, admin_token: str | None = None):
        self.api_key = api_key or None
        self.admin_token = admin_token or None

    def check_api_key(self, headers: Headers) -> None:
        """``/predict`` and ``/feedback``: ``X-API-Key``."""
        if self.api_key:
            _check_secret(headers.get("x-api-key"), self.api_key, "API key (X-API-Key header)")

    def check_admin(self, headers: Headers) -> None:
        """``/admin/*``: ``Authorization: Bearer <admin token>``."""
        if not self.admin_token:
            return
        auth = headers.get("authorization")
        if not auth:
            raise RequestError(401, "missing Authorization: Bearer <admin token>")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer":
            raise RequestError(401, "Authorization must use the Bearer scheme")
        _check_secret(token.strip(), self.admin_token, "admin token")


class OpenAdminError(ValueError):
    """A service about to listen on a network address with its admin routes open."""


def check_bind(host: str, admin_token: str | None) -> None:
    """Before the service listens on ``host``: with no admin token its ``/admin`` routes are open
    to anyone who reaches it, so only loopback is allowed then (``OpenAdminError`` otherwise)."""
    if admin_token:
        return
    if not is_loopback(host):
        raise OpenAdminError(
            f"refusing to serve on {host} with no admin token: /admin routes would be open to the network; "
            "set RATCHET_ADMIN_TOKEN (or use `ratchet serve`, which makes the home's token) or bind 127.0.0.1"
        )
    log.warning("no admin token: /admin routes are open to anyone on this machine (%s is loopback only); "
                "set RATCHET_ADMIN_TOKEN to close them", host)


# ---------------------------------------------------------------- bodies and errors
async def read_json_body(headers: Headers, receive, limit: int, untyped_ok: bool = False) -> object:
    """The request's JSON body, read straight from the ASGI ``receive`` (4xx as RequestError).
    ``untyped_ok``: a body without a Content-Type is read as JSON (the Open Inference Protocol's
    clients, tritonclient among them, send none)."""
    ctype = headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if untyped_ok and not media:
        pass
    elif media != "application/json" and not media.endswith("+json"):
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


def client_error_response(exc: RequestError, rid: str | None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({**exc.body(), "request_id": rid}, status_code=exc.status, headers=headers)


def model_error_response(rid: str | None) -> JSONResponse:
    return JSONResponse({"detail": "the model failed on this input", "request_id": rid}, status_code=500)
