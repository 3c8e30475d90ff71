"""ratchet's default model against scikit-learn's HistGradientBoosting on real tabular data.

For each data set (all ship inside installable packages, no download): split it into
batches, run the loop's core as a user would (``init`` on the first batch, ``ingest`` of
every batch, ``train``, ``promote``, through the flows in this process), then score the
trained version and a HistGradientBoosting model trained on the SAME training rows (the
window's train and validation split) on the SAME held-out rows (the split the gate scores).

Targets (issue 13): accuracy within 1 point of HGB for classification, RMSE within 5 % for
regression.

    python benchmarks/real_data.py                 # every data set, the default search
    python benchmarks/real_data.py --trials 2 --only wine,diabetes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _sklearn(name: str, target_name: str = "target"):
    from sklearn import datasets

    frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    return frame.rename(columns={"target": target_name})


def _penguins():
    from palmerpenguins import load_penguins

    return load_penguins()


def _vega(name: str, target: str):
    from vega_datasets import local_data

    return getattr(local_data, name)().dropna(subset=[target])


def _statsmodels(name: str):
    import statsmodels.api as sm

    return getattr(sm.datasets, name).load_pandas().data


def _fair():
    """Fair's 1978 affairs survey (statsmodels): had an affair or not, from questionnaire codes."""
    df = _statsmodels("fair")
    return df.assign(affair=(df.pop("affairs") > 0).map({True: "yes", False: "no"}))


def _river(name: str, target: str = "target"):
    """A data set river ships inside its wheel (no download), rows of dicts to a frame."""
    from river import datasets

    rows = [{**x, target: y} for x, y in getattr(datasets, name)()]
    return pd.DataFrame(rows)


def _weather():
    return _vega("seattle_weather", "weather").drop(columns=["date"])


DATASETS = {  # name: (loader, target); every one ships inside an installable package, no download
    "breast_cancer": (lambda: _sklearn("breast_cancer"), "target"),  # binary, 569 rows
    "wine": (lambda: _sklearn("wine"), "target"),  # 3 classes, 178 rows
    "digits": (lambda: _sklearn("digits", "digit"), "digit"),  # 10 classes, 1,797 rows, 64 pixel counts
    "penguins": (_penguins, "species"),  # 3 classes, 344 rows, missing values, categories
    "diabetes": (lambda: _sklearn("diabetes", "progression"), "progression"),  # regression, 442 rows
    "cars": (lambda: _vega("cars", "Miles_per_Gallon"), "Miles_per_Gallon"),  # regression, 398 rows, a date
    "weather": (_weather, "weather"),  # Seattle's weather: 5 classes, 1,461 rows
    "fair": (_fair, "affair"),  # binary, 6,366 rows of integer-coded answers
    "randhie": (lambda: _statsmodels("randhie"), "mdvis"),  # a count target (doctor visits), 20,190 rows
    "bananas": (lambda: _river("Bananas"), "target"),  # binary, 5,300 rows, two numbers
    "segments": (lambda: _river("ImageSegments", "segment"), "segment"),  # 7 classes, 2,310 rows
    "phishing": (lambda: _river("Phishing"), "target"),  # binary, 1,250 rows
}


def write_batches(frame: pd.DataFrame, folder: Path, n: int, seed: int) -> list[str]:
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, part in enumerate(np.array_split(frame, n)):
        path = folder / f"batch-{i:03d}.csv"
        part.to_csv(path, index=False)
        paths.append(str(path))
    return paths


def hgb_frame(df: pd.DataFrame, schema) -> pd.DataFrame:
    """The model's own feature frame (same columns, other bucket, date parts), categories
    as pandas categoricals so HGB treats them natively."""
    from ratchet.training.model.preprocess import frame_for_model

    x = frame_for_model(df, schema)
    for col in schema.features:
        if col.dtype == "category":
            cats = sorted(set(col.categories or ()) | set(x[col.name].dropna().astype(str)))
            x[col.name] = pd.Categorical(x[col.name].astype(object).where(x[col.name].notna()), categories=cats)
    return x


def run_one(name: str, trials: int | None, batches: int, seed: int) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from flows.ingest import ingest_flow
    from flows.promote import promote_flow
    from flows.train import train_flow
    from ratchet.runtime.home import init_home
    from ratchet.runtime.options import RunOptions
    from ratchet.training.model.preprocess import target_values
    from ratchet.training.window import training_data

    loader, target = DATASETS[name]
    frame = loader()
    tmp = Path(tempfile.mkdtemp(prefix=f"ratchet-real-{name}-"))
    overrides = {"tune": {"trials": trials}} if trials else None
    options = RunOptions(overrides=overrides, home=str(tmp / "home"))
    ctx = options.context()
    paths = write_batches(frame, tmp / "incoming", batches, seed)
    t0 = time.perf_counter()
    init = init_home(ctx, paths[0], target)
    rejected = 0
    for p in paths:
        state = ingest_flow(p, options=options, return_state=True)
        rejected += not state.is_completed()
    trained = train_flow(options=options)
    promoted = promote_flow(trigger="benchmark", options=options)
    elapsed = time.perf_counter() - t0

    schema = ctx.schema
    tags = ctx.registry.version_info(trained.model_version)["tags"]
    data = training_data(ctx.repo, tags["data_commit"], ctx.cfg, int(tags.get("window_batches") or 0) or None,
                         schema=ctx.schema)
    fit_rows = pd.concat([data.train, data.val])
    y_fit = target_values(fit_rows[schema.target.name], schema.target)
    y_test = target_values(data.test[schema.target.name], schema.target)
    predictor = ctx.registry.load_predictor(trained.model_version)
    regression = schema.target.is_regression
    if regression:
        ours = predictor.predict(data.test)
        hgb = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=seed)
        theirs = hgb.fit(hgb_frame(fit_rows, schema), y_fit).predict(hgb_frame(data.test, schema))
        ours_m = float(np.sqrt(np.mean((ours - y_test) ** 2)))
        theirs_m = float(np.sqrt(np.mean((theirs - y_test) ** 2)))
        gap = ours_m / theirs_m - 1  # relative RMSE: + is worse
        met = gap <= 0.05
    else:
        ours = predictor.predict_proba(data.test).argmax(axis=1)
        hgb = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
        theirs = hgb.fit(hgb_frame(fit_rows, schema), y_fit).predict(hgb_frame(data.test, schema))
        ours_m, theirs_m = float(np.mean(ours == y_test)), float(np.mean(theirs == y_test))
        gap = theirs_m - ours_m  # accuracy points behind HGB: + is worse
        met = gap <= 0.01
    return {
        "dataset": name, "task": schema.target.task, "rows": len(frame), "fit_rows": len(fit_rows),
        "test_rows": len(data.test), "ignored": sorted(init.get("ignored") or {}), "rejected_batches": rejected,
        "metric": "rmse" if regression else "accuracy", "ratchet": ours_m, "hgb": theirs_m, "gap": gap,
        "target_met": bool(met), "promoted": promoted.outcome.action if promoted.outcome else None,
        "loop_s": round(elapsed, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=None, help="Optuna trials (default: the config's)")
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated data sets")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    names = [n for n in args.only.split(",") if n] or list(DATASETS)
    rows = [run_one(n, args.trials, args.batches, args.seed) for n in names]
    print(f"\n{'data set':<14} {'task':<11} {'fit/test':>9} {'metric':<9} {'ratchet':>8} {'HGB':>8} "
          f"{'gap':>8} {'target':>7} {'rejected':>8} {'loop s':>7}")
    for r in rows:
        gap = f"{r['gap'] * 100:+.1f}{'%' if r['metric'] == 'rmse' else 'pt'}"
        print(f"{r['dataset']:<14} {r['task']:<11} {r['fit_rows']:>4}/{r['test_rows']:<4} {r['metric']:<9} "
              f"{r['ratchet']:>8.4f} {r['hgb']:>8.4f} {gap:>8} {'met' if r['target_met'] else 'MISSED':>7} "
              f"{r['rejected_batches']:>8} {r['loop_s']:>7}")
    print("\ngap: accuracy points behind HGB (classification, target <= +1.0pt); "
          "RMSE relative to HGB (regression, target <= +5%)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
