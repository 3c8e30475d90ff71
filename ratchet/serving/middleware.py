"""The ASGI layer around the FastAPI app, and what every route shares below it.

* :class:`ObserveMiddleware`: a request id and ``X-Model-Version`` on every response, request
  count/latency/errors per route and version, any unhandled exception as a JSON 500; the routes
  in its ``direct`` table (``POST /predict``, the V2 infer) it answers itself
  (:meth:`~ObserveMiddleware.serve_direct`, which the app calls before FastAPI's middleware,
  router and dependency layers: on a single-row prediction they cost more than the model);
* :class:`RequestHeaders`: a request's headers parsed once;
* :class:`Auth`: the API key (``X-API-Key``) and the admin token (``Authorization: Bearer``);
  :func:`check_bind`, the admin routes never open on a network;
* :func:`read_json_body`: a JSON body read straight from ASGI ``receive``, with ratchet's
  415/413/400 messages;
* the JSON client-error and model-error responses.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from ratchet.core.files import is_loopback
from ratchet.serving.state import ServingRuntime, Steps
from ratchet.serving.validation import RequestError, parse_json

log = logging.getLogger(__name__)

# (scope, receive) -> the response: a route the middleware answers itself
DirectRoute = Callable[[dict, Callable], Awaitable[Response]]
# (scope, the whole body) -> the steps to the response, or None for the ASGI path (Steps: the
# model's forward yielded to the caller): the same route on the event loop without ASGI
# (ObserveMiddleware.serve_inline)
InlineRoute = Callable[[dict, bytes], Steps]

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


class RequestHeaders:
    """A request's headers read once into a dict (ASGI gives lower-case names): ``get`` as
    starlette's ``Headers.get``, without its scan of the whole list at every look-up. A name sent
    twice keeps its first value, as ``Headers.get`` does."""

    __slots__ = ("_d",)

    def __init__(self, raw: list) -> None:
        d: dict[bytes, bytes] = {}
        for name, value in raw:
            d.setdefault(name, value)
        self._d = d

    def get(self, name: str, default: str | None = None) -> str | None:
        v = self._d.get(name.encode("latin-1"))
        return default if v is None else v.decode("latin-1")

    def __contains__(self, name: str) -> bool:
        return name.encode("latin-1") in self._d


def headers_of(scope: dict) -> RequestHeaders:
    """The request's headers, parsed once per request (kept in the scope's state)."""
    state = scope.setdefault("state", {})
    h = state.get("headers")
    if h is None:
        h = state["headers"] = RequestHeaders(scope["headers"])
    return h


def _request_id(headers: RequestHeaders) -> str:
    sent = headers.get("x-request-id")
    return sent if sent is not None and _REQUEST_ID_RE.match(sent) else new_request_id()


class ObserveMiddleware:
    """Request id on every response; request count/latency/errors per route and version;
    any unhandled exception becomes a JSON 500 (the service keeps serving). Routes in ``direct``
    are answered by :meth:`serve_direct`, which the app calls before FastAPI's own stack
    (``ratchet.serving.app``); the middleware answers them too when it is reached first."""

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
        if direct is not None:
            return await self.serve_direct(scope, receive, send, direct)
        rid = _request_id(headers_of(scope))
        state = scope["state"]
        state["request_id"] = rid
        status = [500, False]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0], status[1] = message["status"], True
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers["X-Request-ID"] = rid
                if "x-model-version" not in headers:  # the version that answered, else the champion
                    headers["X-Model-Version"] = self._version(state)
            await send(message)

        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            status[0] = 500
            if not status[1]:
                await self._internal_error(scope, receive, send, rid)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "other"
            self.runtime.metrics.observe_request(
                path, scope.get("method", ""), status[0], state.get("model_version"), time.perf_counter() - t0
            )

    async def serve_direct(self, scope, receive, send, route: DirectRoute) -> None:
        """A direct route: its response (a complete body, as every direct route gives) is sent
        with two ASGI messages and the request id and model version added to its raw headers,
        with no wrapper around ``send``."""
        t0 = time.perf_counter()
        rid = _request_id(headers_of(scope))
        state = scope["state"]
        state["request_id"] = rid
        status = 500
        started = False
        background = None
        try:
            response = await route(scope, receive)
            status = response.status_code
            background = response.background
            self._identify(response, state, rid)
            started = True
            await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
            await send({"type": "http.response.body", "body": response.body})
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            status = 500
            if not started:
                await self._internal_error(scope, receive, send, rid)
        finally:
            self.runtime.metrics.observe_request(
                scope["path"], scope["method"], status, state.get("model_version"), time.perf_counter() - t0
            )
        if background is not None:  # after the answer is out (a shadow prediction): not in its latency
            # one turn of the event loop first: the service's transport sends what this turn
            # wrote at its end (ratchet.serving.transport), so the answer leaves before this work
            await asyncio.sleep(0)
            await run_background(background, scope)

    def serve_inline(self, scope, body: bytes, answer: InlineRoute) -> Steps:
        """A direct route answered without ASGI, on the event loop, from a body already received
        whole (the service's HTTP protocol runs these steps: ``ratchet.serving.transport``, which
        runs the model's forward, shared between concurrent requests): the response with the
        request id and model version in its raw headers, counted in the metrics (its latency
        includes the wait for the shared forward); None when ``answer`` leaves the request to the
        ASGI path (which then counts it). The caller sends the response, then awaits its
        ``background`` (:func:`run_background`)."""
        t0 = time.perf_counter()
        rid = _request_id(headers_of(scope))
        state = scope["state"]
        state["request_id"] = rid
        try:
            response = yield from answer(scope, body)
            if response is None:
                return None
            self._identify(response, state, rid)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            response = _internal_error_response(rid)
        self.runtime.metrics.observe_request(
            scope["path"], scope["method"], response.status_code, state.get("model_version"), time.perf_counter() - t0
        )
        return response

    def inline(self, answer: InlineRoute) -> InlineRoute:
        """``answer`` served by :meth:`serve_inline`."""
        return lambda scope, body: self.serve_inline(scope, body, answer)

    def _identify(self, response: Response, state: dict, rid: str) -> None:
        """The request id and the model version in a direct route's raw headers, unless the
        response has them (``identified``)."""
        if getattr(response, "identified", False):
            return
        raw = response.raw_headers
        names = {name for name, _ in raw}
        if b"x-request-id" not in names:
            raw.append((b"x-request-id", rid.encode("latin-1")))
        if b"x-model-version" not in names:
            raw.append((b"x-model-version", self._version(state).encode("latin-1")))

    def _version(self, state: dict) -> str:
        """The version that answered, else the loaded champion's, else ``none``."""
        version = state.get("model_version")
        if version is None:
            champion = self.runtime.snapshot.champion
            version = champion.version if champion is not None else "none"
        return version

    @staticmethod
    async def _internal_error(scope, receive, send, rid: str) -> None:
        await _internal_error_response(rid)(scope, receive, send)


def _internal_error_response(rid: str) -> JSONResponse:
    """The JSON 500 of an unhandled error, naming the request."""
    return JSONResponse({"detail": "internal error", "request_id": rid}, status_code=500, headers={"X-Request-ID": rid})


async def run_background(background, scope: dict) -> None:
    """A direct route's work after its answer (a shadow prediction), its failure logged."""
    try:
        await background()
    except Exception:
        log.exception("background work after %s %s failed", scope.get("method"), scope.get("path"))


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

    def check_api_key(self, headers) -> None:
        """``/predict`` and ``/feedback``: ``X-API-Key``."""
        if self.api_key:
            _check_secret(headers.get("x-api-key"), self.api_key, "API key (X-API-Key header)")

    def check_admin(self, headers) -> None:
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
def check_json_head(headers, limit: int, untyped_ok: bool = False) -> None:
    """A JSON request's Content-Type and declared Content-Length (415/400/413 as RequestError).
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


async def read_json_body(headers, receive, limit: int, untyped_ok: bool = False) -> object:
    """The request's JSON body, read straight from the ASGI ``receive`` (4xx as RequestError)."""
    check_json_head(headers, limit, untyped_ok)
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


def json_body(headers, body: bytes, limit: int, untyped_ok: bool = False) -> object:
    """:func:`read_json_body` of a body already received whole (the inline path)."""
    check_json_head(headers, limit, untyped_ok)
    if len(body) > limit:
        raise RequestError(413, f"body is over the limit of {limit} bytes")
    return parse_json(body)


def client_error_response(exc: RequestError, rid: str | None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({**exc.body(), "request_id": rid}, status_code=exc.status, headers=headers)


def model_error_response(rid: str | None) -> JSONResponse:
    return JSONResponse({"detail": "the model failed on this input", "request_id": rid}, status_code=500)
