"""Accuracy estimated without labels (CBPE) against the accuracy the labels then show.

    python benchmarks/performance_estimation.py [--window 5000] [--epochs 6] [--streams census,covariate,concept]
                                                [--json out.json]

A ratchet model (``ratchet.training.model.fit.fit``, the network and preprocessing that
``ratchet train`` registers) is fitted on a reference period split as ``ratchet train`` splits
it; its top-label confidence is calibrated on the validation and test rows
(``ratchet.training.search.calibrate``, what ``ratchet train`` runs); each later window of unlabelled rows gets ratchet's estimate
(``ratchet.core.performance.estimate``), and then its labels give the realised accuracy.
The peer is NannyML's CBPE (``pip install -e .[bench]``) on the SAME predictions, with the
same calibration rows as its reference: it fits its own isotonic calibrator there.

Streams:
  census     real data, a shift between survey years: the US Census ACS employment table of
             Massachusetts that ships inside the ``nannyml`` package (folktables' ACSEmployment
             task): trained on 2015, windows of 2016, 2017 and 2018 (covariate shift: who is
             surveyed moves, the meaning of the answers hardly does)
  covariate  ``ratchet.demo.synthetic`` with its data drift from the first window on (incomes up,
             ages down, more renters; the labelling rule unchanged): where CBPE holds
  concept    the same stream with its concept drift (the labelling rule changes): where CBPE
             cannot hold, since the inputs and the confidences look as before while the labels
             mean something else; shown, not hidden

Printed per stream: windows, the reference's accuracy, realised accuracy (mean), the expected
calibration error of the raw and the calibrated confidence (cross-fitted between validation and
test rows), the mean and largest absolute error of
the accuracy estimate in points, for ratchet and for NannyML, and the F1 estimate's mean error.

Measured on a shared 2-core machine (defaults: windows of 5,000 rows, 6 epochs; nannyml 0.13.1):

    stream     windows  ref acc real acc  ECE raw->cal   ratchet CBPE       NannyML CBPE       ratchet F1         NannyML F1
    census          40    0.827    0.828  0.016->0.012   0.49 (max 1.44)    0.46 (max 1.40)    0.54 (max 1.54)    0.48 (max 1.39)
    covariate        6    0.882    0.884  0.013->0.013   0.75 (max 1.17)    0.86 (max 1.30)    0.63 (max 1.11)    0.83 (max 1.34)
    concept          6    0.882    0.256  0.013->0.013  62.95 (max 63.92)  63.09 (max 64.06)  64.85 (max 65.74)  65.07 (max 65.98)

Both estimators are within half a point of the realised accuracy on average under the census
years' shift and the synthetic covariate shift, and both miss concept drift by 63 points: the
confidences look as before while the labels changed. Only labels (live feedback, labelled
batches) see that; the monitor's concept test does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # nannyml phones home (segment.io) unless told not to


def census() -> tuple[pd.DataFrame, list[tuple[str, pd.DataFrame]], str]:
    """(reference rows, [(window name, rows)], target) of nannyml's ACS employment data of MA."""
    from nannyml.datasets import load_us_census_ma_employment_data

    ref, ana, tgt = load_us_census_ma_employment_data()
    drop = ["id", "prediction", "predicted_probability"]  # nannyml's own model's outputs
    ana = ana.merge(tgt, on="id")
    ref, ana = ref.drop(columns=drop), ana.drop(columns=drop)
    return ref.drop(columns="year"), [(f"{y}", g.drop(columns="year")) for y, g in ana.groupby("year")], "employed"


def synthetic(kind: str, windows: int = 6, rows: int = 5000) -> tuple[pd.DataFrame, list, str]:
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch

    drift = {"data_drift_at": 1} if kind == "covariate" else {"concept_drift_at": 1}
    ref = generate_batch(0, 20_000, seed=7)
    return ref, [(f"batch {i}", generate_batch(i, rows, seed=7, **drift)) for i in range(1, windows + 1)], DEMO_TARGET


def split_windows(named: list[tuple[str, pd.DataFrame]], size: int) -> list[tuple[str, pd.DataFrame]]:
    out = []
    for name, df in named:
        for i in range(0, len(df) - size + 1, size):
            out.append((f"{name}#{i // size}", df.iloc[i:i + size]))
    return out


def train(ref: pd.DataFrame, target: str, epochs: int):
    """A ratchet model on ``ref`` split as ``ratchet train`` splits a window (by row content:
    train, validation, test), calibrated as it calibrates (``search.calibrate``: on the validation
    and test rows). Returns (predictor, those rows, the calibration's metrics)."""
    from ratchet.core.config import TrainConfig, load_config
    from ratchet.data.schema_inference import infer_schema
    from ratchet.training.model.fit import fit
    from ratchet.training.search import calibrate
    from ratchet.training.window import TrainingData, split_frame

    cfg = load_config()
    schema = infer_schema(ref, target)
    train_df, val_df, test_df = split_frame(ref, cfg.train.val_fraction, cfg.train.test_fraction, cfg.train.seed)
    result = fit(train_df, val_df, schema, TrainConfig(max_epochs=epochs), progress=False)
    predictor = result.predictor
    metrics = calibrate(predictor, TrainingData("benchmark", ["reference"], train_df, val_df, test_df))
    return predictor, pd.concat([val_df, test_df], ignore_index=True), metrics


def outputs(predictor, df: pd.DataFrame, target: str) -> pd.DataFrame:
    """Predictions in the shape NannyML reads: the positive class's probability, the 0/1 prediction, the label."""
    from ratchet.training.model.preprocess import encode_target

    proba = predictor.predict_proba(df)
    y = encode_target(df[target], predictor.classes)
    return pd.DataFrame({"p": proba[:, -1], "pred": proba.argmax(axis=1), "y": y})


def nannyml_estimates(reference: pd.DataFrame, windows: list[pd.DataFrame]) -> tuple[list | None, str | None]:
    """NannyML CBPE's (accuracy, f1) per window, or (None, why not)."""
    try:
        import nannyml as nml
    except ImportError as e:
        return None, f"nannyml not installed ({e.name}): pip install -e .[bench]"
    est = nml.CBPE(y_pred_proba="p", y_pred="pred", y_true="y", problem_type="classification_binary",
                   metrics=["accuracy", "f1"], chunk_number=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(reference)
        out = []
        for w in windows:
            df = est.estimate(w.drop(columns="y")).filter(period="analysis").to_df()
            out.append((float(df[("accuracy", "value")].iloc[0]), float(df[("f1", "value")].iloc[0])))
    return out, None


def f1_of(pred: np.ndarray, y: np.ndarray) -> float:
    tp = float(((pred == 1) & (y == 1)).sum())
    denom = 2 * tp + float(((pred == 1) & (y == 0)).sum()) + float(((pred == 0) & (y == 1)).sum())
    return 2 * tp / denom if denom else 0.0


def run_stream(name: str, window: int, epochs: int) -> dict:
    from ratchet.core.performance import estimate

    ref, named, target = census() if name == "census" else synthetic(name, rows=window)
    predictor, val, calibration = train(ref, target, epochs)
    windows = split_windows(named, window)
    reference = outputs(predictor, val, target)
    frames = [outputs(predictor, w, target) for _, w in windows]
    rows = []
    for (wname, w), out in zip(windows, frames, strict=True):
        est = estimate(predictor.predict_proba(w), predictor.calibration, predictor.classes)
        rows.append({"window": wname, "rows": len(w), "realised_accuracy": float((out["pred"] == out["y"]).mean()),
                     "realised_f1": f1_of(out["pred"].to_numpy(), out["y"].to_numpy()),
                     "ratchet_accuracy": est.accuracy, "ratchet_sd": est.accuracy_sd, "ratchet_f1": est.f1})
    peer, why = nannyml_estimates(reference, frames)
    for r, p in zip(rows, peer or [], strict=False):
        r["nannyml_accuracy"], r["nannyml_f1"] = p

    def err(key: str, truth: str = "realised_accuracy") -> tuple[float, float] | None:
        if not rows or key not in rows[0]:
            return None
        e = np.abs([100 * (r[key] - r[truth]) for r in rows])
        return float(e.mean()), float(e.max())

    return {
        "stream": name, "windows": len(rows), "window_rows": window,
        "reference_accuracy": float((reference["pred"] == reference["y"]).mean()),
        "realised_accuracy_mean": float(np.mean([r["realised_accuracy"] for r in rows])),
        "calibration": calibration,
        "ratchet_error_points": err("ratchet_accuracy"), "nannyml_error_points": err("nannyml_accuracy"),
        "ratchet_f1_error_points": err("ratchet_f1", "realised_f1"),
        "nannyml_f1_error_points": err("nannyml_f1", "realised_f1"),
        "nannyml_unavailable": why, "per_window": rows,
    }


def _fmt(e: tuple[float, float] | None) -> str:
    return "unavailable" if e is None else f"{e[0]:5.2f} (max {e[1]:5.2f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--window", type=int, default=5000, help="rows per window")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--streams", default="census,covariate,concept")
    ap.add_argument("--json", default=None, help="write every window's figures here")
    args = ap.parse_args(argv)
    results = []
    for name in args.streams.split(","):
        if name == "census":
            try:
                import nannyml  # noqa: F401  (the data ships inside it)
            except ImportError:
                print("census: unavailable: the data ships inside nannyml (pip install -e .[bench])")
                continue
        results.append(run_stream(name, args.window, args.epochs))
    print("\naccuracy estimated without labels vs realised (error in points: mean over windows, max)")
    print(f"{'stream':10s} {'windows':>7s} {'ref acc':>8s} {'real acc':>8s} {'ECE raw->cal':>13s} "
          f"{'ratchet CBPE':>20s} {'NannyML CBPE':>20s} {'ratchet F1':>20s} {'NannyML F1':>20s}")
    for r in results:
        c = r["calibration"]
        print(f"{r['stream']:10s} {r['windows']:7d} {r['reference_accuracy']:8.3f} {r['realised_accuracy_mean']:8.3f} "
              f"{c['calibration_ece_raw']:6.3f}->{c['calibration_ece']:5.3f} {_fmt(r['ratchet_error_points']):>20s} "
              f"{_fmt(r['nannyml_error_points']):>20s} {_fmt(r['ratchet_f1_error_points']):>20s} "
              f"{_fmt(r['nannyml_f1_error_points']):>20s}")
        if r["nannyml_unavailable"]:
            print(f"  NannyML: {r['nannyml_unavailable']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
