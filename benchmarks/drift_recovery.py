"""Recovery from drift through the flows (no stack): ingest, train, gate on a drifting stream.

    python -m benchmarks.drift_recovery [--batches 9] [--drift-at 6] [--rows 400] [--seed 0]
                                        [--streams concept,feature,both,gradual,none,agrawal]
                                        [--min-window-rows 0]

Streams (river's STAGGER generator, ``river.datasets.synth``: size, colour and shape as strings,
plus a numeric ``weight`` that no rule reads, so features carry strings and numbers):
  concept   pure concept drift: from ``drift_at`` the labels follow another rule (STAGGER's rule 1,
            "green or circle", becomes "blue or square": the same share of positives and the same
            feature distribution, so no profile can see it)
  feature   feature drift with the same rule: sizes skew large and ``weight`` shifts by one sd
  both      both at once
  gradual   concept drift over four batches: a growing share of each batch follows the new rule
  none      no drift: every alarm is a false one
  agrawal   pure concept drift on river's Agrawal loan stream (nine features, three of them strings):
            classification function 2 (salary bands by age) becomes 8 (disposable income)

For each stream and each batch from ``drift_at`` on, after ingest -> train -> promote: accuracy on
a fresh holdout of the newest rule for ratchet's champion and for a model retrained on all data
(``train.window: all``, no gate), the batches until a better champion, and the alarms raised
(``ratchet.drift.detected`` from ingest) on batches before the drift and on the no-drift stream.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

SIZES, COLORS, SHAPES = ("small", "medium", "large"), ("red", "green", "blue"), ("square", "circle", "triangle")
TARGET = "label"


def _old_rule(df: pd.DataFrame) -> np.ndarray:
    return ((df["color"] == "green") | (df["shape"] == "circle")).to_numpy()


def _new_rule(df: pd.DataFrame) -> np.ndarray:
    return ((df["color"] == "blue") | (df["shape"] == "square")).to_numpy()


def stagger_frame(rows: int, seed: int, new_share: float = 0.0, feature_drift: bool = False) -> pd.DataFrame:
    """``rows`` rows of river's STAGGER features; a ``new_share`` of them labelled by the new rule."""
    from river.datasets import synth

    xs = [x for x, _ in synth.STAGGER(classification_function=1, seed=seed).take(rows * (3 if feature_drift else 1))]
    df = pd.DataFrame(
        {"size": [SIZES[x["size"]] for x in xs], "color": [COLORS[x["color"]] for x in xs],
         "shape": [SHAPES[x["shape"]] for x in xs]}
    )
    rng = np.random.default_rng(seed)
    if feature_drift:  # keep large sizes three times as often as small ones
        keep = rng.random(len(df)) < df["size"].map({"small": 0.2, "medium": 0.4, "large": 0.6}).to_numpy()
        df = df[keep].head(rows).reset_index(drop=True)
    df["weight"] = rng.normal(1.0 if feature_drift else 0.0, 1.0, len(df)).round(4)
    new = rng.random(len(df)) < new_share
    df[TARGET] = np.where(new, _new_rule(df), _old_rule(df)).astype(int)
    return df


def stream(kind: str, batches: int, rows: int, drift_at: int, seed: int) -> list[pd.DataFrame]:
    out = []
    for i in range(batches):
        after = i >= drift_at and kind != "none"
        share = min(1.0, (i - drift_at + 1) / 4) if kind == "gradual" and after else float(after)
        share = share if kind in ("concept", "both", "gradual") else 0.0
        out.append(stagger_frame(rows, seed * 1000 + i, share, feature_drift=after and kind in ("feature", "both")))
    return out


def holdout(kind: str, rows: int, seed: int) -> pd.DataFrame:
    """Fresh rows of the stream's final regime."""
    return stagger_frame(rows, seed * 1000 + 999, float(kind in ("concept", "both", "gradual")),
                         feature_drift=kind in ("feature", "both"))


EDUCATION = ("none", "school", "college", "bachelor", "master")  # Agrawal's elevel 0..4, as strings
AGRAWAL_KEYS = ("salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan")
AGRAWAL_OLD, AGRAWAL_NEW = 2, 8  # classification functions: salary bands by age, then disposable income


def agrawal_frame(rows: int, seed: int, function: int) -> pd.DataFrame:
    """``rows`` rows of river's Agrawal loan features (six numbers; education, car maker and zip code
    as strings), labelled by Agrawal's classification ``function``. The features depend on
    ``seed`` alone, so changing ``function`` changes only the labelling rule (functions 2 and 8
    label about half the rows positive each and agree on half of them: no profile sees the switch,
    the stale champion is at chance)."""
    from river.datasets import synth

    xs = [x for x, _ in synth.Agrawal(classification_function=0, seed=seed).take(rows)]
    rule = synth.Agrawal(classification_function=function)._classification_functions[function]
    df = pd.DataFrame(xs)
    df[TARGET] = np.array([rule(*(x[k] for k in AGRAWAL_KEYS)) for x in xs], dtype=int)
    df["elevel"] = df["elevel"].map(dict(enumerate(EDUCATION)))
    df["car"] = df["car"].map(lambda c: f"maker-{c:02d}")
    df["zipcode"] = df["zipcode"].map(lambda z: f"zip-{z}")
    return df


def agrawal_stream(batches: int, rows: int, drift_at: int, seed: int) -> list[pd.DataFrame]:
    """Pure concept drift on Agrawal: function 2 before ``drift_at``, function 8 from there on."""
    return [agrawal_frame(rows, seed * 1000 + i, AGRAWAL_NEW if i >= drift_at else AGRAWAL_OLD) for i in range(batches)]


def accuracy(predictor, df: pd.DataFrame) -> float:
    proba = predictor.predict_proba(df.drop(columns=[TARGET]))
    return float((np.asarray(proba).argmax(axis=1) == df[TARGET].to_numpy()).mean())


MIN_WINDOW_ROWS = 0  # train.min_window_rows of ratchet's loop (--min-window-rows)


def _options(home: Path, window: str):
    from ratchet.runtime.options import RunOptions

    root = Path(__file__).resolve().parents[1]
    files = [str(root / "ratchet" / "configs" / "ratchet.yaml"), str(root / "configs" / "test.yaml")]
    return RunOptions(config_files=files, home=str(home), overrides={"train": {"window": window, "min_window_rows": MIN_WINDOW_ROWS}})


def run_stream(kind: str, batches: int, rows: int, drift_at: int, seed: int, root: Path) -> dict:
    """Both loops on one stream: after each batch from the sixth on, retrain (as the published-batch
    automation does); ratchet's challenger goes through the gate, the other one simply serves."""
    from flows.ingest import ingest_flow
    from flows.promote import promote_flow
    from flows.train import train_flow
    from ratchet.core.schema import dump_schema
    from ratchet.data.schema_inference import infer_schema

    if kind == "agrawal":
        frames, test = agrawal_stream(batches, rows, drift_at, seed), agrawal_frame(2000, seed * 1000 + 999, AGRAWAL_NEW)
    else:
        frames, test = stream(kind, batches, rows, drift_at, seed), holdout(kind, 2000, seed)
    opts = {"ratchet": _options(root / f"{kind}-ratchet", "since_drift"), "all data": _options(root / f"{kind}-all", "all")}
    for o in opts.values():
        dump_schema(infer_schema(frames[0], TARGET), o.context().settings.schema_path)
    acc: dict[str, list[float]] = {"ratchet": [], "all data": []}
    out = {"kind": kind, "acc": acc, "concept_alarms_before": 0, "concept_alarms_after": 0,
           "profile_alarms_before": 0, "first_better": None, "stale": None, "rules": []}
    folder = root / f"{kind}-batches"
    folder.mkdir(parents=True, exist_ok=True)
    for i, df in enumerate(frames):
        path = folder / f"batch-{i}.csv"
        df.to_csv(path, index=False)
        if i == drift_at and i > 0:
            out["stale"] = accuracy(opts["ratchet"].context().registry.load_predictor("champion"), test)
        for name, o in opts.items():
            report = ingest_flow(str(path), options=o).report
            if name == "ratchet":
                after = "after" if i >= drift_at and kind != "none" else "before"
                if (report.get("concept") or {}).get("detected"):
                    out[f"concept_alarms_{after}"] += 1
                if after == "before" and (report.get("drift") or {}).get("detected"):
                    out["profile_alarms_before"] += 1
            if i + 1 < min(drift_at, 6):
                continue
            version = train_flow(trigger="benchmark", options=o).model_version
            c = o.context()
            if name == "ratchet":
                promote_flow(trigger="benchmark", options=o)
                out["rules"].append(c.registry.version_info(version)["tags"].get("window_rule"))
            else:  # the common practice: the newest model serves, no gate
                c.registry.set_alias("champion", version)
        if i >= drift_at:
            for name, o in opts.items():
                acc[name].append(accuracy(o.context().registry.load_predictor("champion"), test))
            if out["first_better"] is None and out["stale"] is not None and acc["ratchet"][-1] >= out["stale"] + 0.02:
                out["first_better"] = i - drift_at + 1
    if kind == "none":
        out["live_alarms"] = live_false_alarms(opts["ratchet"], seed)
    return out


def live_false_alarms(options, seed: int, windows: int = 30, per_window: int = 100) -> int:
    """The live monitor's sequential test over ``windows`` feedback windows of unchanged traffic
    (fresh rows of the same regime, labelled, scored by the real champion): 1 if it ever fires."""
    from ratchet.monitoring.batch_scores import champion_baseline
    from ratchet.monitoring.drift import live_concept

    ctx = options.context()
    predictor = ctx.registry.load_predictor("champion")
    readings, fb, ok = [], 0, 0
    for w in range(windows):
        df = stagger_frame(per_window, seed * 1000 + 500 + w)
        fb, ok = fb + len(df), ok + round(accuracy(predictor, df) * len(df))
        readings.append({"checked_at": float(w), "feedback_total": fb, "correct_total": ok})
    verdict = live_concept(readings, champion_baseline(ctx.registry, ctx.schema), ctx.cfg.drift)
    return int(bool(verdict and verdict.detected))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=9)
    ap.add_argument("--drift-at", type=int, default=6)
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--streams", default="concept,feature,both,gradual,none,agrawal")
    ap.add_argument("--min-window-rows", type=int, default=0, help="train.min_window_rows (thin evidence)")
    args = ap.parse_args()
    global MIN_WINDOW_ROWS
    MIN_WINDOW_ROWS = args.min_window_rows
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/drift_recovery.py`
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=180):
        results = [
            run_stream(k, args.batches if k != "none" else 16, args.rows,
                       args.drift_at if k != "none" else 16, args.seed, Path(tmp))
            for k in args.streams.split(",")
        ]
    n = args.batches - args.drift_at
    print(f"\nholdout accuracy (2000 fresh rows of the final regime) of the champion after each batch, "
          f"from the drift on (batch {args.drift_at}); 'stale': the champion before the drift")
    print(f"{'stream':<9} {'model':<9} {'stale':<6} " + " ".join(f"b{args.drift_at + j:<5}" for j in range(n)))
    for r in results:
        if r["kind"] == "none":
            continue
        for name, xs in r["acc"].items():
            print(f"{r['kind']:<9} {name:<9} {r['stale'] or 0:<6.3f} " + " ".join(f"{x:<6.3f}" for x in xs))
    print(f"\n{'stream':<9} {'concept alarms before/after drift':>34} {'profile alarms before':>22} "
          f"{'batches to a better champion':>29}")
    for r in results:
        print(f"{r['kind']:<9} {r['concept_alarms_before']:>17}/{r['concept_alarms_after']:<16} "
              f"{r['profile_alarms_before']:>22} {r['first_better']!s:>29}")
        if "live_alarms" in r:
            print(f"          live monitor: {r['live_alarms']} alarm(s) over 30 windows of unchanged traffic")
    for r in results:
        print(f"window rules ({r['kind']}): {r['rules']}")


if __name__ == "__main__":
    main()
