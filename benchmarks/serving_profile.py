"""Where a single-row ``POST /predict`` spends its time, in process: microseconds per part.

Builds the serving app exactly as ``python -m ratchet.serving`` does (``create_app`` with the
shipped config, live profiling in its worker process, metrics, the feedback store), on the
model ``benchmarks/serving.py`` serves (ratchet's own ``fit`` on the synthetic stream), loaded
as champion and as challenger with a 50 % split (routing on), then times:

* each part of the request path alone, in a loop over the same 256 single-row bodies (the
  header look-ups, the body's parse, the routing draw, validation, the fast path's feature
  matrix and network, the ranking of the probabilities, metrics, the profiler and feedback
  hand-offs, rendering, the two ASGI messages); the minimum over ``--repeats`` runs of the
  mean per call, so that another process taking the CPU for a while does not count;
* the whole ASGI call of the app (``ServingApp.__call__`` on a scope like uvicorn's, a
  ``receive`` giving the body and a ``send`` that drops the messages), as ``--shadow`` says;
* the whole HTTP request inside uvicorn's httptools protocol (:func:`protocol_times`: a
  keep-alive connection's requests fed as bytes on the service's event loop, the answers
  written to a transport that only counts them): the service's protocol answering ``/predict``
  inline, the same protocol sending every request through ASGI (as before the inline path), and
  uvicorn's own protocol with an empty endpoint (the floor);
* the whole request under cProfile, when ``--cprofile N`` (the top N functions by own time).

What the kernel adds per request (the socket reads and writes, the wake-ups) is the server's CPU
time per request in ``benchmarks/serving.py`` minus the protocol's figure here.

    python benchmarks/serving_profile.py [--n 20000] [--repeats 5] [--shadow] [--cprofile 25]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")
for _k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # as benchmarks/serving.py
    os.environ.setdefault(_k, "1")


class _Provider:
    """The same fitted model under both aliases (what the benchmark's v1 and v2 are)."""

    def __init__(self, model):
        self.model = model

    def versions(self) -> dict:
        return {"champion": "1", "challenger": "2"}

    def load(self, alias: str):
        import copy

        m = copy.copy(self.model)
        m.version = "1" if alias == "champion" else "2"
        return m


def build(tmp: Path, shadow: bool, family: str | None = None):
    import torch

    from benchmarks.serving import train_config
    from ratchet.core.config import load_config
    from ratchet.data.schema_inference import infer_schema
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
    from ratchet.serving import create_app
    from ratchet.serving.__main__ import tune_process
    from ratchet.serving.traffic_split import Traffic
    from ratchet.training.model.fit import fit

    torch.set_num_threads(1)
    df = generate_batch(0, 3000, seed=5)
    schema = infer_schema(df, DEMO_TARGET)
    full = load_config([str(ROOT / "ratchet" / "configs" / "ratchet.yaml")])
    predictor = fit(df.iloc[:2400], df.iloc[2400:], schema, train_config(family, full), progress=False).predictor
    cfg = full.serving
    app = create_app(_Provider(predictor), cfg, tmp, admin_token="t", watch_interval_s=None,
                     profile_window_s=cfg.profile_window_s, profile_process=True)
    rt = app.state.ratchet
    tune_process(app)  # as the service: models loaded, gc.freeze(), the GIL switch interval
    rt.set_traffic(Traffic(challenger_share=0.5, shadow=shadow))
    traffic = generate_batch(1, 256, seed=5).drop(columns=[DEMO_TARGET])
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in traffic.to_dict("records")]
    return app, rt, rows


def scope_of(body: bytes) -> dict:
    """What uvicorn (httptools) hands the app for a wrk request."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "server": ("127.0.0.1", 8765), "client": ("127.0.0.1", 50000), "scheme": "http", "method": "POST",
        "root_path": "", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8765"), (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body))],
        "state": {},
    }


class _Transport:
    """A socket's place under uvicorn's protocol: counts the bytes written, sends nothing."""

    def __init__(self) -> None:
        self.written = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    resume_reading = pause_reading

    def get_extra_info(self, name: str, default=None):
        return {"sockname": ("127.0.0.1", 8765), "peername": ("127.0.0.1", 50000)}.get(name, default)


async def _empty_app(scope, receive, send) -> None:
    """The benchmark's empty endpoint (``benchmarks/serving.py``): read the body, answer a constant."""
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


def protocol_times(app, bodies: list[bytes], n: int, repeats: int) -> list[tuple[str, float]]:
    """CPU microseconds per request of uvicorn's httptools protocol fed a keep-alive connection's
    requests as wrk sends them, on one event loop, each answered before the next: the service's
    protocol (``ratchet.serving.transport``: ``/predict`` answered inline), the same protocol with
    the app's inline routes hidden (every request through ASGI, as before the inline path), and
    uvicorn's own protocol with the empty endpoint (the floor)."""
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from ratchet.serving.transport import http_protocol

    raws = [b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:8765\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(b), b) for b in bodies]
    try:  # the service's loop (uvicorn takes uvloop when installed)
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    class Hidden:  # the app without its inline routes
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            await self.inner(scope, receive, send)

    class OneByOne(Hidden):  # the app with its inline routes, each request's forward its own
        inline_batching = None

        def __init__(self, inner):
            super().__init__(inner)
            self.inline_routes = inner.inline_routes

    out = []
    for name, the_app, cls in (
        ("the service's protocol: /predict answered inline", app, http_protocol()),
        ("  the same, a forward per request (batch_inline: false)", OneByOne(app), http_protocol()),
        ("the same protocol, every request through ASGI", Hidden(app), http_protocol()),
        ("uvicorn's protocol, the empty endpoint", _empty_app, HttpToolsProtocol),
    ):
        config = Config(the_app, proxy_headers=False, log_level="warning", server_header=False)
        proto = cls(config=config, server_state=ServerState(), app_state={}, _loop=loop)
        transport = _Transport()
        loop.call_soon(proto.connection_made, transport)
        loop.run_until_complete(asyncio.sleep(0))

        def run(k: int, proto=proto) -> None:
            async def many():
                for i in range(k):
                    proto.data_received(raws[i % len(raws)])
                    while not proto.cycle.response_complete:
                        await asyncio.sleep(0)
                    await asyncio.sleep(0)  # the coalesced write
            loop.run_until_complete(many())

        run(200)
        out.append((name, timed(run, n, repeats)))
        assert transport.written > 0 and not transport.closing
        proto.connection_lost(None)
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    return out


def timed(fn, n: int, repeats: int) -> float:
    """CPU microseconds per call of this thread (``time.thread_time``: another process, or the
    profiler's thread, taking the CPU does not count): the least mean over ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        fn(n)
        best = min(best, (time.thread_time() - t0) / n)
    return best * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="calls per timed run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shadow", action="store_true", help="the 50 %% split in shadow mode (else canary)")
    ap.add_argument("--cprofile", type=int, default=0, help="also cProfile the whole call: top N by own time")
    ap.add_argument("--family", default=None, help="the model family served (mlp, mlp_ple, tabm; default the MLP)")
    args = ap.parse_args(argv)

    from ratchet.serving import middleware as mw
    from ratchet.serving.predict import FastJSONResponse, render_predict, slot_headers
    from ratchet.serving.traffic_split import selects_challenger
    from ratchet.serving.validation import parse_json, parse_predict_body

    tmp = Path(tempfile.mkdtemp(prefix="ratchet-serving-profile-"))
    print("fitting the benchmark's model ...", flush=True)
    app, rt, rows = build(tmp, args.shadow, args.family)
    bodies = [json.dumps({"row": r}).encode() for r in rows]
    scopes = [scope_of(b) for b in bodies]
    nb = len(bodies)
    snap = rt.snapshot
    slot = snap.champion
    predict = app.state.direct_routes[("POST", "/predict")]
    observe = app.direct
    m, prof, fb = rt.metrics, rt.profiler, rt.feedback
    loop = asyncio.new_event_loop()
    n, reps = args.n, args.repeats
    reqs = [parse_predict_body(parse_json(b), 1000) for b in bodies]
    batches = [slot.validator.validate(r.rows) for r in reqs]
    scored = [slot.predict_scored(b) for b in batches]

    async def noop_send(message) -> None:
        pass

    def receiver(body: bytes):
        msg = {"type": "http.request", "body": body, "more_body": False}

        async def receive():
            return msg

        return receive

    receivers = [receiver(b) for b in bodies]

    def asgi(k: int) -> None:
        async def many():
            for i in range(k):
                j = i % nb
                s = dict(scopes[j])
                s["state"] = {}
                await app(s, receivers[j], noop_send)

        loop.run_until_complete(many())

    parts: list[tuple[str, object]] = []

    def part(name):
        def deco(fn):
            parts.append((name, fn))
            return fn
        return deco

    @part("headers: parse once, request id")
    def _(k):
        for i in range(k):
            s = {"headers": scopes[i % nb]["headers"]}
            mw._request_id(mw.headers_of(s))

    @part("body: receive, Content-Type/Length, JSON parse")
    def _(k):
        async def many():
            for i in range(k):
                j = i % nb
                await mw.read_json_body(mw.RequestHeaders(scopes[j]["headers"]), receivers[j], 2_000_000)
        loop.run_until_complete(many())

    @part("  of which JSON parse (parse_json)")
    def _(k):
        for i in range(k):
            parse_json(bodies[i % nb])

    @part("request shape (parse_predict_body)")
    def _(k):
        objs = [parse_json(b) for b in bodies]
        for i in range(k):
            parse_predict_body(objs[i % nb], 1000)

    @part("routing draw (selects_challenger)")
    def _(k):
        share = snap.traffic.challenger_share
        for _ in range(k):
            selects_challenger(share, None)

    @part("validation (compiled per schema)")
    def _(k):
        v = slot.validator
        for i in range(k):
            v.validate(reqs[i % nb].rows)

    @part("model: the fast path on one row (FastPath.predict_proba)")
    def _(k):
        f = slot.fast
        for i in range(k):
            f.predict_proba(batches[i % nb].columns, 1)

    @part("model: checks and ranking (predict_scored minus the above)")
    def _(k):
        for i in range(k):
            slot.predict_scored(batches[i % nb])

    @part("metrics: routed, predictions, CBPE estimate")
    def _(k):
        import numpy as np

        cal = slot.calibration
        for i in range(k):
            labels, _, conf = scored[i % nb]
            m.observe_routed(slot.version)
            m.observe_predictions(slot.version, "champion", labels)
            if cal is not None:
                m.observe_estimated(slot.version, cal.apply(np.asarray(conf, dtype=float)))

    @part("metrics: request count, latency (observe_request)")
    def _(k):
        for _ in range(k):
            m.observe_request("/predict", "POST", 200, slot.version, 0.0005)

    @part("profiler hand-off (record)")
    def _(k):
        for i in range(k):
            labels, _, conf = scored[i % nb]
            prof.record(slot.version, batches[i % nb], labels, conf)

    @part("feedback store (record)")
    def _(k):
        for i in range(k):
            labels = scored[i % nb][0]
            fb.record(f"rid{i}", slot.version, labels, slot.classes)

    @part("rendering: answer dict, orjson, headers")
    def _(k):
        for i in range(k):
            labels, proba, _ = scored[i % nb]
            body = render_predict(reqs[i % nb], "rid", slot, "champion", labels, proba)
            FastJSONResponse(body, raw_headers=slot_headers(slot, "champion"))

    @part("ASGI: two send() messages")
    def _(k):
        async def many():
            for _ in range(k):
                await noop_send({"type": "http.response.start", "status": 200, "headers": []})
                await noop_send({"type": "http.response.body", "body": b"{}"})
        loop.run_until_complete(many())

    asgi(2000)  # warm: every label set seen, the compiled paths hot
    print(f"\nsingle-row /predict, in process; us per call (least mean of {reps} x {n} calls); "
          f"50 % challenger share, {'shadow' if args.shadow else 'canary'}\n")
    total = model_us = 0.0
    for name, fn in parts:
        us = timed(fn, n, reps)
        if name.startswith("model: checks"):
            us -= model_us
        model_us = us
        if not name.startswith("  "):
            total += us
        print(f"  {name:72s} {us:7.2f}")
    print(f"  {'sum of the parts':72s} {total:7.2f}")
    from ratchet.serving.predict import PREDICT_PROTOCOL

    def sync(k):
        for i in range(k):
            j = i % nb
            predict.predict_sync(reqs[j], {"request_id": "rid"}, rt.snapshot, inline=True)

    def handle(k):
        async def many():
            for i in range(k):
                j = i % nb
                await predict.handle({"headers": scopes[j]["headers"], "state": {"request_id": "rid"}}, receivers[j],
                                     PREDICT_PROTOCOL)
        loop.run_until_complete(many())

    def direct(k):
        async def many():
            for i in range(k):
                j = i % nb
                s = dict(scopes[j])
                s["state"] = {}
                await observe.serve_direct(s, receivers[j], noop_send, predict)
        loop.run_until_complete(many())

    print("  nested, each including the one above:")
    for name, fn in (("PredictHandler.predict_sync: route, validate, predict, record, render", sync),
                     ("PredictHandler.handle: + headers, body, parse, snapshot", handle),
                     ("ObserveMiddleware.serve_direct: + request id, metrics, send", direct)):
        print(f"  {name:72s} {timed(fn, n, reps):7.2f}")
    whole = timed(asgi, n, reps)
    print(f"  {'the whole ASGI call (ServingApp.__call__)':72s} {whole:7.2f}")
    print(f"  {'  glue: the whole call - the sum of the parts':72s} {whole - total:7.2f}")
    print("  the whole HTTP request in uvicorn's httptools protocol (bytes in, bytes out; no socket):")
    for name, us in protocol_times(app, bodies, n, reps):
        print(f"  {name:72s} {us:7.2f}")
    if args.cprofile:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        pr.enable()
        asgi(n)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(args.cprofile)
    rt.stop()
    loop.close()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
