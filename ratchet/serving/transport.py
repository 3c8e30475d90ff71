"""One socket write per response: uvicorn's HTTP protocol over a transport that coalesces writes.

uvicorn writes a response's status line and headers (``http.response.start``) and its body
(``http.response.body``) with two ``transport.write`` calls; uvloop sends each at once, so a
single-row ``/predict`` costs two ``send`` system calls and two TCP segments, and the client
wakes up twice (on a 2-core machine the load generator shares the cores with the server). The
transport here holds the writes made during one turn of the event loop and sends them with one
``write`` at the end of the turn (``loop.call_soon``): the same bytes in the same order, one
system call. ``close()`` sends what is held first. Sending at the end of the turn rather than as
soon as a response is complete also puts the answers of the requests handled in one turn (one
per connection that was ready) on their sockets back to back: measured at ~3 us less CPU per
single-row ``/predict`` under 8 connections (kernel paths warm, the client woken once), with
the same median latency. Work an app does after its answer (a shadow prediction) yields one
turn first (``ObserveMiddleware.serve_direct``), so that the answer is out before it starts.

Under httptools the protocol also answers the app's inline routes (``/predict``, the V2 infer)
without ASGI (:class:`InlineRoutes`), and gives the single rows of the requests that arrive in one
turn one forward of their model (:class:`_Waiting`: dynamic batching with no added wait).

uvicorn takes a protocol class as ``http=``: :func:`http_protocol` gives its httptools protocol
(h11 when httptools is not installed) with this transport under it. Written here, not found in
uvicorn or uvloop: neither offers to coalesce writes (uvloop's ``write`` tries the socket at once,
by design, for latency), and the ASGI messages cannot carry the head and the body together.
"""

from __future__ import annotations

import asyncio
import logging

from ratchet.serving.middleware import run_background
from ratchet.serving.state import Steps, forward_all, resume, run_steps

log = logging.getLogger(__name__)


class CoalescingTransport:
    """A transport whose ``write``s within one turn of the event loop go out as one write;
    everything else is the wrapped transport's."""

    __slots__ = ("_transport", "_held", "_loop")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._held: list[bytes] = []
        self._loop = loop

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(data)

    def writelines(self, lines) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        held = self._held
        if held:
            self._held = []
            if not self._transport.is_closing():
                self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str):  # get_extra_info, is_closing, pause_reading, set_protocol, ...
        return getattr(self._transport, name)


def service_options() -> dict:
    """uvicorn's settings as the service runs (``python -m ratchet.serving``, ``ratchet serve``,
    the demo's and the tests' in-process service): keyword arguments of ``uvicorn.Config``."""
    return {
        "access_log": False,
        # no X-Forwarded-* rewriting of the client address: nothing here reads it, the
        # middleware costs a few per cent of a single-row /predict, and it would hide the app's
        # inline routes from the protocol
        "proxy_headers": False,
        # a response's head and body in one socket write; /predict answered without ASGI
        "http": http_protocol(),
        # no "server: uvicorn" on every answer: it names the stack to anyone, and uvicorn checks
        # each header it sends against two regular expressions
        "server_header": False,
    }


def http_protocol() -> type:
    """uvicorn's HTTP protocol class (httptools', else h11's) writing through a
    :class:`CoalescingTransport`; under httptools, it also answers the app's inline routes
    (:class:`InlineRoutes`)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # httptools not installed
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

        class CoalescingHTTPProtocol(base):
            def connection_made(self, transport) -> None:  # type: ignore[override]
                super().connection_made(CoalescingTransport(transport, asyncio.get_running_loop()))

        return CoalescingHTTPProtocol

    from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE

    class ServiceHTTPProtocol(InlineRoutes, base):
        high_water = HIGH_WATER_LIMIT
        status_line = STATUS_LINE

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(CoalescingTransport(transport, asyncio.get_running_loop()))

    return ServiceHTTPProtocol


class InlineRoutes:
    """Mixed into uvicorn's httptools protocol: a request to one of the app's ``inline_routes``
    (``(method, path) -> (scope, body) -> response or None``) is answered as soon as its body
    is whole, inside the protocol's ``on_message_complete``, with no ASGI task, no ``receive``
    or ``send`` and no ASGI messages. uvicorn still parses the request, builds its scope and
    request cycle, and keeps its connection state (keep-alive, its timer, pipelining): the
    cycle is marked answered and its ``on_response`` called, as its ``send`` would.

    Why: on a single-row ``/predict`` uvicorn's ASGI side (a task per request, an
    ``asyncio.Event``, the ``receive``/``send`` coroutines, each header checked against two
    regular expressions) cost as much CPU as ratchet's whole answer. The route gives None to
    take the ASGI path (the models not loaded yet, a batch for a worker thread); so does a
    request the protocol cannot answer at once: ``Expect: 100-continue``, a body over uvicorn's
    high-water mark, a client not reading its answers (writing paused), or uvicorn's
    ``limit_concurrency`` answering 503."""

    high_water: int
    status_line: dict
    _inline_pending = None  # (cycle, app, route): a request whose body is still arriving
    _inline_routes: dict | None = None  # the app's, read once a connection
    _waiting: _Waiting | None = None  # the requests of this turn waiting for a shared forward (batching on)

    def connection_made(self, transport) -> None:
        self._inline_routes = getattr(self.app, "inline_routes", None)
        turn_requests = getattr(self.app, "inline_batching", None)
        if turn_requests is not None:
            self._waiting = _Waiting.of(self.loop, turn_requests)
        super().connection_made(transport)

    def _start_asgi_task(self, cycle, app) -> None:
        routes = self._inline_routes
        route = routes.get((cycle.scope["method"], cycle.scope["path"])) if routes else None
        if route is None or app is not self.app or cycle.waiting_for_100_continue:
            return super()._start_asgi_task(cycle, app)
        if cycle.more_body:  # the body is still to come: answered at on_message_complete
            self._inline_pending = (cycle, app, route)
            return
        self._answer_inline(cycle, app, route)  # a pipelined request, its body in

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        pending = self._inline_pending
        if pending is not None and len(pending[0].body) > self.high_water:
            # uvicorn paused reading until the app receives: hand it to the app
            self._inline_pending = None
            super()._start_asgi_task(pending[0], pending[1])

    def on_message_complete(self) -> None:
        super().on_message_complete()
        pending = self._inline_pending
        if pending is not None:
            self._inline_pending = None
            self._answer_inline(*pending)

    def connection_lost(self, exc) -> None:
        self._inline_pending = None
        super().connection_lost(exc)

    def _answer_inline(self, cycle, app, route) -> None:
        steps = None
        if not (cycle.disconnected or self.flow.write_paused):
            steps = route(cycle.scope, bytes(cycle.body))
        if steps is None or self._waiting is None:  # the ASGI path, or batching off: the forward at once
            return self._send_inline(cycle, app, steps if steps is None else run_steps(steps))
        try:
            need = next(steps)
        except StopIteration as stop:  # answered without the model (an error, or None: ASGI)
            return self._send_inline(cycle, app, stop.value)
        self._waiting.add(self, cycle, app, steps, need)

    def _send_inline(self, cycle, app, response) -> None:
        if response is None:
            return super()._start_asgi_task(cycle, app)
        if cycle.disconnected:  # the client left while its request waited for the shared forward
            return
        cycle.body = bytearray()
        cycle.response_started = cycle.response_complete = True
        # the head as uvicorn's send writes it: the server's default headers (date), the
        # response's own (ratchet's: names and values it made, so not checked again), and
        # "connection: close" when the connection ends with this answer
        head = [self.status_line[response.status_code]]
        for name, value in (*cycle.default_headers, *response.raw_headers):
            head += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", response.body)
        self.transport.write(b"".join(head))
        background = response.background
        if background is not None:
            # a task: it starts after this turn's writes are sent (the transport's flush was
            # scheduled first), so the answer leaves before this work (a shadow prediction)
            task = self.loop.create_task(run_background(background, cycle.scope))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()


class _Waiting:
    """The inline requests of one turn of the event loop waiting for their model's forward (one per
    connection whose request was whole in this turn), run together at the end of the turn
    (``loop.call_soon``): the one-row requests of one model share one forward
    (``ratchet.serving.state.forward_all``), then each request's steps finish and its answer is
    written. This is dynamic batching with no added wait (Triton's ``max_queue_delay`` of 0):
    a request waits only for the requests that arrived with it, and a lone request is answered
    as before. Written here, not taken from a serving library: the forward runs inside uvicorn's
    protocol (``InlineRoutes``), where no library's batcher (Triton's, MLServer's adaptive
    batching, BentoML's) can reach, and theirs add a queue and a wait that a 20 us forward cannot
    carry."""

    __slots__ = ("loop", "items", "turn_requests")
    _by_loop: dict[tuple[int, int], _Waiting] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop, turn_requests) -> None:
        self.loop = loop
        self.items: list[tuple] = []
        self.turn_requests = turn_requests  # observe(n): the requests answered in a turn

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, turn_requests) -> _Waiting:
        """The loop's own for one app (every connection's requests of a turn wait together)."""
        key = (id(loop), id(turn_requests))
        found = cls._by_loop.get(key)
        if found is None or found.loop is not loop or found.turn_requests is not turn_requests:
            # a new loop or app (a test's): forget those of closed loops, which hold their loop alive
            cls._by_loop = {k: w for k, w in cls._by_loop.items() if not w.loop.is_closed()}
            found = cls._by_loop[key] = cls(loop, turn_requests)
        return found

    def add(self, protocol: InlineRoutes, cycle, app, steps: Steps, need) -> None:
        if not self.items:
            self.loop.call_soon(self.run)
        self.items.append((protocol, cycle, app, steps, need))

    def run(self) -> None:
        items, self.items = self.items, []
        self.turn_requests.observe(len(items))
        results = forward_all([item[4] for item in items])
        for (protocol, cycle, app, steps, _), result in zip(items, results, strict=True):
            try:
                protocol._send_inline(cycle, app, resume(steps, result))
            except Exception:  # never leave the other requests of the turn unanswered
                log.exception("inline request failed after its forward")
                protocol.transport.close()
