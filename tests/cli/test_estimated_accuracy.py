"""Accuracy without labels on real data with a shift between survey years, as a user runs it.

The US Census ACS employment table of Massachusetts that ships inside the ``nannyml`` package
(the ``bench`` extra): ``ratchet init`` / ``ingest`` / ``train`` / ``promote`` on 2015 rows, then
``ratchet score FILE --json`` on the 2018 rows without their label. The estimated accuracy it
reports must be within 2 points of the accuracy the labels then show. Slow (a training on 2 cores:
a few minutes): ``pytest -m slow tests/cli/test_estimated_accuracy.py``.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

TARGET = "employed"
NOT_FEATURES = ["id", "year", "prediction", "predicted_probability"]  # nannyml's own model's outputs


def _ok(res, what: str) -> dict:
    assert res.returncode == 0, f"{what}: {res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


def test_score_reports_estimated_accuracy_within_two_points_on_a_later_year(project):
    datasets = pytest.importorskip("nannyml.datasets", reason="the census data ships inside nannyml: .[bench]")
    ref, ana, tgt = datasets.load_us_census_ma_employment_data()
    ref = ref.drop(columns=NOT_FEATURES).sample(30_000, random_state=0)
    later = ana.merge(tgt, on="id")
    later = later[later["year"] == 2018].drop(columns=NOT_FEATURES).reset_index(drop=True)
    folder = project.folder
    for i in range(3):
        ref.iloc[i * 10_000:(i + 1) * 10_000].to_csv(folder / f"2015-{i}.csv", index=False)
    later.drop(columns=TARGET).to_csv(folder / "2018-unlabelled.csv", index=False)

    _ok(project.run("init", "--schema-from", "2015-0.csv", "--target", TARGET, "--json"), "init")
    for i in range(3):
        _ok(project.run("ingest", f"2015-{i}.csv", "--json", timeout=300), f"ingest {i}")
    trained = _ok(project.run("train", "--trials", "2", "--json", timeout=1800), "train")
    m = trained["metrics"]
    print(f"calibration on {m['calibration_rows']:.0f} validation and test rows; expected calibration error: "
          f"raw {m['calibration_ece_raw']:.4f}, calibrated {m['calibration_ece']:.4f} (cross-fitted)")
    _ok(project.run("promote", "--json", timeout=600), "promote")

    res = project.run("score", "2018-unlabelled.csv", "--out", "preds.csv", "--json", timeout=900)
    scored = _ok(res, "score")
    est = scored["summary"]["estimated_performance"]
    preds = pd.read_csv(folder / "preds.csv")
    realised = float((preds["prediction"].astype(str) == later[TARGET].astype(str)).mean())
    print(f"2018: {len(later)} rows, estimated accuracy {est['accuracy']:.4f} ± {est['accuracy_sd']:.4f}, "
          f"realised {realised:.4f}, error {100 * (est['accuracy'] - realised):+.2f} points")
    assert est["rows"] == len(later)
    assert abs(est["accuracy"] - realised) <= 0.02
