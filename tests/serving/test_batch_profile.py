"""Batch scoring's profile of the predictions: a bounded, evenly spaced sample of each chunk,
the label profiled as the same strings (as a categorical, whylogs' fast path), and every row
still written with its row id. Real whylogs, a real tiny Lightning model, real Parquet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ratchet.data.profiling import profile_frame
from ratchet.demo.synthetic import DEMO_TARGET
from ratchet.serving.scoring import profile_sample, score_chunks, summarize
from tests.serving.helpers import train_tiny_predictor


def _frequent(view, column: str) -> dict[str, int]:
    items = view.get_column(column).to_summary_dict()["frequent_items/frequent_strings"]
    return {str(f.value): int(f.est) for f in items}


def test_the_sample_is_evenly_spaced_and_the_label_profile_is_unchanged():
    labels = np.where(np.arange(25_000) % 3 == 0, "yes", "no").astype(object)
    pred = pd.DataFrame({"prediction": labels, "proba_yes": np.linspace(0, 1, 25_000, dtype="float32")})
    sample = profile_sample(pred, 10_000)
    assert len(sample) <= 10_000 and list(sample.index[:3]) == [0, 3, 6]  # every 3rd row
    assert str(sample["prediction"].dtype) == "category"
    whole = profile_sample(pred, 100_000)
    assert len(whole) == len(pred)
    assert _frequent(profile_frame(whole), "prediction") == _frequent(profile_frame(pred), "prediction")
    ints = pd.DataFrame({"prediction": np.array([0, 1] * 5, dtype=object)})
    assert profile_sample(ints)["prediction"].dtype == object  # only strings become categorical


def test_every_row_is_written_and_the_profile_sees_a_bounded_sample(tmp_path):
    predictor, df = train_tiny_predictor(seed=4, rows=600, epochs=1)
    predictor.version = "9"
    frame = pd.concat([df.drop(columns=[DEMO_TARGET])] * 10, ignore_index=True)  # 6000 rows
    chunks = (frame.iloc[i:i + 2000] for i in range(0, len(frame), 2000))
    out = tmp_path / "p.parquet"
    rows, n_chunks, view = score_chunks(predictor, chunks, "9", "c0ffee", out, profile_rows=500, say=lambda _m: None)
    assert (rows, n_chunks) == (6000, 3)
    written = pq.read_table(out).to_pandas()
    assert list(written["row_id"]) == list(range(6000)) and set(written["model_version"]) == {"9"}
    summary = summarize(view, rows)
    assert summary["rows"] == 6000 and summary["profiled_rows"] == 1500  # 500 of each chunk
    assert summary["columns"]["prediction"]["count"] == 1500


def test_batch_scoring_estimates_accuracy_from_the_calibrated_confidence(tmp_path):
    from ratchet.core.performance import EstimateAccumulator, positive_index
    from ratchet.demo.synthetic import generate_batch
    from ratchet.serving.scoring import estimated_summary
    from ratchet.training.model.fit import Predictor
    from ratchet.training.model.preprocess import encode_target

    predictor, df = train_tiny_predictor(seed=4, rows=1500, epochs=2)
    cal = predictor.calibrate(df.iloc[1200:])  # the fit's validation rows
    assert cal is not None and cal.rows == 300
    predictor = Predictor.load(predictor.save(tmp_path / "model.pkl"))  # the calibration travels with the model
    assert (predictor.calibration.x, predictor.calibration.y, predictor.calibration.rows) == (cal.x, cal.y, 300)
    fresh = generate_batch(1, 4000, seed=11)
    acc = EstimateAccumulator(positive_index(predictor.classes))
    chunks = (fresh.drop(columns=[DEMO_TARGET]).iloc[i:i + 1000] for i in range(0, 4000, 1000))
    rows, _, _ = score_chunks(predictor, chunks, "9", "c0ffee", tmp_path / "p.parquet", profile=False,
                              say=lambda _m: None, estimate=acc)
    est = estimated_summary(predictor, acc)
    proba = predictor.predict_proba(fresh)
    realised = float((proba.argmax(axis=1) == encode_target(fresh[DEMO_TARGET], predictor.classes)).mean())
    assert est["rows"] == rows == 4000 and est["calibration"]["rows"] == 300
    assert abs(est["accuracy"] - realised) < max(0.03, 3 * est["accuracy_sd"]), (est, realised)
    assert "f1" in est
