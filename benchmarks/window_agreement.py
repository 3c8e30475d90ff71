"""Does the window choice (``train.window: best``) agree with full trainings on a real stream?

    python -m benchmarks.window_agreement [--origins 1,3] [--proxies linear,forest] [--epochs 4]
                                          [--tie-z 1,1.96] [--seeds 1]

On vega_datasets' seattle-weather in eight half-year batches (``benchmarks.drift_recovery``'s
``seattle`` stream), after each batch t from the 3rd to the 7th: every candidate window of
``ratchet.training.choice`` is scored as the choice scores it (its proxy over ``--origins``
origins: 1 is the newest batch's held-out rows alone, the rule before the rolling origin; 3 the
shipped rolling origin; with each band of ``--tie-z`` standard errors within which more data wins
a tie, the shipped ``train.window_tie_z`` by default; with each of ``--proxies``: the logistic regression, a random forest, or
``model``, the model itself, one fit per candidate and origin, as ``window_proxy: auto`` does on
data this small), and trained for real (the model the loop ships, one fit at the
config's parameters: ``ratchet.yaml`` and ``configs/test.yaml`` as in the drift benchmark, with
``--epochs``; with ``--seeds N`` N fits at N training seeds, their next-batch log loss and accuracy
averaged, since one fit's accuracy on a half-year moves by several points with the seed), then
scored on the *next* batch, the data it would serve. Printed per origin setting:
the mean over the five times of Spearman's rank correlation between the choice's scores and the
full trainings' log loss on the next batch (1: the choice ranks windows as the future does), and
the mean next-batch accuracy of the chosen window against the best candidate in hindsight
(oracle), all batches, and the newest 3.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def _full(rows: pd.DataFrame, scored: pd.DataFrame, schema, cfg, tcfg, seeds: int = 1) -> tuple[float, float]:
    """(log loss, accuracy) on ``scored`` of the shipped model fitted on ``rows``' training split: the
    mean over ``seeds`` fits at training seeds ``tcfg.seed``, ``tcfg.seed + 1``, ... (the split stays)."""
    runs = [_fit_once(rows, scored, schema, cfg, tcfg.model_copy(update={"seed": tcfg.seed + i})) for i in range(seeds)]
    return float(np.mean([r[0] for r in runs])), float(np.mean([r[1] for r in runs]))


def _fit_once(rows: pd.DataFrame, scored: pd.DataFrame, schema, cfg, tcfg) -> tuple[float, float]:
    from ratchet.training.model.fit import fit
    from ratchet.training.model.preprocess import encode_target
    from ratchet.training.window import sides

    held, val = sides(rows, cfg, schema.row_key)
    predictor = fit(rows[~held & ~val], rows[val], schema, tcfg, progress=False).predictor
    proba = np.clip(predictor.predict_proba(scored), 1e-6, 1.0)
    y = encode_target(scored[schema.target.name], predictor.classes)
    return float(-np.log(proba[np.arange(len(y)), y]).mean()), float((proba.argmax(1) == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--origins", default="1,3", help="rolling-origin settings to compare")
    ap.add_argument("--proxies", default="linear",
                    help="proxies of ratchet.training.choice to compare (linear, forest, model)")
    ap.add_argument("--epochs", type=int, default=None, help="max_epochs of the full trainings (default: config's)")
    ap.add_argument("--tie-z", default=None, help="tie bands (standard errors) to compare (default: the config's)")
    ap.add_argument("--seeds", type=int, default=1, help="full trainings per window, at as many seeds, averaged")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/window_agreement.py`
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from scipy.stats import spearmanr

    from benchmarks.drift_recovery import seattle_stream
    from ratchet.data.schema_inference import infer_schema
    from ratchet.runtime.options import RunOptions
    from ratchet.training.choice import choose, proxy_for, recency_sample
    from ratchet.training.window import sides

    frames, target = seattle_stream()
    schema = infer_schema(pd.concat(frames, ignore_index=True), target)
    root = Path(__file__).resolve().parents[1]
    files = [str(root / "ratchet" / "configs" / "ratchet.yaml"), str(root / "configs" / "test.yaml")]
    with tempfile.TemporaryDirectory() as home:
        cfg = RunOptions(config_files=files, home=home).context().cfg
    tcfg = cfg.train.model_copy(update={"max_epochs": args.epochs or cfg.train.max_epochs})
    t_cfg = cfg.train

    def split(df):
        return sides(df, cfg, schema.row_key)

    bands = [float(z) for z in args.tie_z.split(",")] if args.tie_z else [t_cfg.window_tie_z]
    settings = [(p, int(o), z) for p in args.proxies.split(",") for o in args.origins.split(",") for z in bands]
    rho: dict[tuple[str, int, float], list[float]] = {o: [] for o in settings}
    label = lambda o: f"{o[0]}@{o[1]}, z {o[2]:g}"  # noqa: E731
    picked: dict[str, list[float]] = {**{label(o): [] for o in settings}, "oracle": [], "all": [], "newest 3": []}
    for t in range(3, len(frames)):
        seen, future = frames[:t], frames[t]
        choices = {(p, o, z): choose(seen, schema, split, t_cfg.seed, {}, origins=o, tie_z=z,
                                     proxy=proxy_for(tcfg.model_copy(update={"window_proxy": p}), schema, 0, split))
                   for p, o, z in settings}
        sizes = {c.name: (c.batches, c.half_life) for c in choices[settings[0]].candidates}
        truth = {name: _full(pd.concat(seen[-k:] if h is None else recency_sample(seen[-k:], h, t_cfg.seed),
                                       ignore_index=True), future, schema, cfg, tcfg, args.seeds)
                 for name, (k, h) in sizes.items()}
        line = f"after batch {t}: next-batch accuracy " + ", ".join(f"{n} {a:.3f}" for n, (_, a) in truth.items())
        for o, choice in choices.items():
            scores = [c.loss for c in choice.candidates]
            r = float(spearmanr(scores, [truth[c.name][0] for c in choice.candidates])[0])
            rho[o].append(r)
            chosen = choice.chosen.split(" = ")[0]
            picked[label(o)].append(truth[chosen][1])
            line += f" | {label(o)}: {chosen} (Spearman {r:+.2f})"
        picked["oracle"].append(max(a for _, a in truth.values()))
        picked["all"].append(truth["all"][1])
        picked["newest 3"].append(truth.get("newest 3", truth["all"])[1])
        print(line, flush=True)
    print(f"\nfull trainings: {tcfg.max_epochs} epochs, {args.seeds} fit(s) at the config's parameters")
    for o in settings:
        print(f"{o[0]} proxy, origins {o[1]}, tie band {o[2]:g} SE: mean Spearman(choice's score, full training's loss on the next batch) "
              f"{np.mean(rho[o]):+.2f} over {len(rho[o])} times")
    print("mean next-batch accuracy of the window: " + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in picked.items()))


if __name__ == "__main__":
    main()
