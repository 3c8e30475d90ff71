"""One socket write per response (ratchet.serving.transport), under a real uvicorn."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ratchet.serving import create_app
from ratchet.serving.transport import CoalescingTransport, http_protocol

from .helpers import MemoryProvider, mixed_rows, ratchet_predictor, serving_config, uvicorn_in_thread


class Recording:
    """A transport that records its writes."""

    def __init__(self):
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def test_writes_of_one_turn_go_out_as_one_in_order():
    async def scenario():
        real = Recording()
        t = CoalescingTransport(real, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b"")
        t.write(b'{"a":1}')
        assert real.writes == []  # held until the end of this turn
        await asyncio.sleep(0)
        assert real.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"a":1}']
        t.write(b"next")
        t.close()  # what is held goes out before the close
        assert real.writes[-1] == b"next" and real.closed
        await asyncio.sleep(0)
        assert len(real.writes) == 2  # the scheduled flush finds nothing left
        assert t.get_extra_info("peername") == ("127.0.0.1", 1)

    asyncio.run(scenario())


def test_nothing_is_written_to_a_closed_transport():
    async def scenario():
        real = Recording()
        t = CoalescingTransport(real, asyncio.get_running_loop())
        t.write(b"late")
        real.closed = True  # the peer went away before the end of the turn
        await asyncio.sleep(0)
        assert real.writes == []

    asyncio.run(scenario())


@pytest.fixture
def served(tmp_path, monkeypatch):
    """The app (a fast-path champion, the same model in shadow at 100 %) under uvicorn with the
    service's protocol; every write that reaches the socket recorded."""
    chunks: list[bytes] = []
    flush = CoalescingTransport.flush

    def recording_flush(self):
        if self._held:
            chunks.append(b"".join(self._held))
        flush(self)

    monkeypatch.setattr(CoalescingTransport, "flush", recording_flush)
    models = {"1": ratchet_predictor("1"), "2": ratchet_predictor("2")}
    app = create_app(MemoryProvider(models, {"champion": "1", "challenger": "2"}), serving_config(),
                     tmp_path, watch_interval_s=None)
    with uvicorn_in_thread(app, http=http_protocol()) as server:
        yield f"http://127.0.0.1:{server.config.port}", app, chunks


def test_each_answer_is_one_write_and_the_shadow_still_runs(served, monkeypatch):
    url, app, chunks = served
    from ratchet.serving.predict import PredictHandler

    written_before_shadow: list[int] = []
    shadow = PredictHandler.shadow_predict

    def watched(self, *args):
        written_before_shadow.append(len(chunks))
        return shadow(self, *args)

    monkeypatch.setattr(PredictHandler, "shadow_predict", watched)
    rows = mixed_rows(12, seed=7, messy=False)
    with httpx.Client(base_url=url, timeout=10) as client:  # one keep-alive connection
        r = client.put("/admin/traffic", json={"challenger_share": 1.0, "shadow": True})
        assert r.status_code == 200, r.text
        assert app.state.ratchet.snapshot.champion.fast is not None  # answered inline, shadow after it
        chunks.clear()
        answers = [client.post("/predict", json={"row": row}) for row in rows]
        bad = client.post("/predict", content=b"{", headers={"Content-Type": "application/json"})
    assert [a.status_code for a in answers] == [200] * len(rows) and bad.status_code == 400
    assert len(chunks) == len(rows) + 1  # head and body together, one write per answer
    for chunk, answer in zip(chunks, answers, strict=False):
        assert chunk.startswith(b"HTTP/1.1 200 OK\r\n") and chunk.endswith(answer.content)
    assert chunks[-1].startswith(b"HTTP/1.1 400") and chunks[-1].endswith(bad.content)
    # the shadow prediction of answer i runs after answer i is on the socket
    assert written_before_shadow == list(range(1, len(rows) + 1))
    rt = app.state.ratchet
    rt.flush()
    assert rt.metrics.stats()["versions"]["2"]["shadow_rows"] == len(rows)
