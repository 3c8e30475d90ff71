"""The demo's timeline: per traffic slice, the service's accuracy estimated without labels beside
the realised one (a real service on a loopback port, a real calibrated scikit-learn model)."""

from __future__ import annotations

from ratchet.demo.report import plot_loop
from ratchet.demo.simulator import Timeline, _send
from ratchet.demo.traffic import BackgroundServer
from ratchet.serving import create_app
from tests.serving.helpers import CalibratedModel, MemoryProvider, make_frame, serving_config, true_label


def test_each_slice_records_the_estimate_beside_the_realised_accuracy(tmp_path):
    provider = MemoryProvider({"1": CalibratedModel("1", seed=1)}, {"champion": "1"})
    cfg = serving_config(profile_batch_rows=100_000, profile_flush_s=60.0, profile_window_s=3600.0)
    server = BackgroundServer(create_app(provider, cfg, tmp_path, watch_interval_s=None)).start()
    try:
        tl = Timeline(0.0)
        for seed in (40, 41):
            frame = make_frame(80, seed=seed)
            tl.record("clean", 0, *_send(server.url, frame.assign(y=true_label(frame)), "y"))
    finally:
        server.stop()
    for row in tl.rows:
        realised, estimated = row["accuracy_by_version"]["1"], row["estimated_by_version"]["1"]
        assert abs(realised - estimated) < 0.1, row  # 80 rows: the realised figure's own sd is ~0.035
    assert plot_loop({"timeline": tl.rows, "t0": 0.0}, tmp_path / "timeline.png").stat().st_size > 0
