"""The training window chosen by what predicts the newest batch.

Each candidate window (the newest k batches for a few k, every batch, and the batches since each
onset any evidence found) is judged by a cheap proxy model: fitted on the candidate's rows, scored
on the newest batch's held-out rows (the rows the split sets aside for the gate, so no candidate
trains on them). The best mean loss wins; a candidate within one standard error of the best (of
the paired per-row loss differences: Breiman's one-standard-error rule) ties with it, and a tie
goes to the candidate with more batches, since more data lowers variance when the newest batch
cannot tell the windows apart.

Why the newest batch's held-out rows and not a fit without the newest batch: right after an onset
the newest batch is the only one of the new concept, so a fit that leaves it out cannot learn the
new concept in any window, every candidate scores alike, and the tie would keep all data: recovery
would take two batches instead of one.

Why a proxy and not a full training per candidate: one Optuna study per candidate multiplies the
training's cost by the number of candidates. A logistic regression (ridge for regression) on the
training's own preprocessing (``build_preprocessor``) costs milliseconds per thousand rows; its rows
are capped (``PROXY_ROWS``, a seeded sample) so the choice stays cheap on large batches. Gradient
boosting (tried first) took tens of seconds per choice on a loaded 2-core machine (its OpenMP
threads contend), so it was dropped. A proxy ranks windows by what a simple model
learns from them; it can miss a window that only a flexible model would exploit. Measured once
on seattle-weather (8 half-year batches, the shipped MLP with one Optuna trial per candidate,
log loss on the newest batch's held-out rows): the proxy's ranking of the candidates disagreed
with the full trainings' (Spearman -0.94 over 6 candidates; the proxy preferred the newest 1-3
batches, the MLP, which needs more rows, all 8). The gate still stands between a challenger and
the champion; a proxy closer to the model (or a full training of the top two) is the next step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ratchet.core.schema import Schema

PROXY_ROWS = 20_000  # rows a candidate's proxy fits on at most (a seeded sample of its rows)
MIN_SCORED_ROWS = 20  # fewer held-out rows in the newest batch: no evidence to choose by
RULE = "lowest proxy loss on the newest batch's held-out rows; within 1 SE of it, the most batches"


@dataclass(frozen=True)
class Candidate:
    name: str  # "newest 3", "all", "since onset (feature profiles)"
    batches: int
    loss: float | None = None  # mean per-row loss on the newest batch's held-out rows (None: not scored)
    se: float | None = None  # standard error of its paired difference from the best candidate

    def to_dict(self) -> dict:
        return {"name": self.name, "batches": self.batches, "loss": self.loss, "se": self.se}


@dataclass(frozen=True)
class Choice:
    batches: int
    candidates: tuple[Candidate, ...]
    rule: str = RULE

    @property
    def chosen(self) -> str:
        """The chosen window's name(s): every candidate of its size ("newest 3 = since onset (...)")."""
        return " = ".join(c.name for c in self.candidates if c.batches == self.batches)


def candidate_sizes(total: int, onsets: dict[str, int]) -> list[tuple[str, int]]:
    """(name, batches): the newest 1, 2, 3 and 6 batches, all of them, and one per onset source."""
    out = [(f"newest {k}", k) for k in (1, 2, 3, 6) if k < total] + [("all", total)]
    out += [(f"since onset ({source})", n) for source, n in onsets.items()]
    return out


def choose(frames: list[pd.DataFrame], schema: Schema, sides, seed: int, onsets: dict[str, int]) -> Choice | None:
    """The window of ``frames`` (oldest first) whose proxy best predicts the newest frame's held-out
    rows; None when the newest batch holds too few of them. ``sides(df)`` gives (held-out, val) masks."""
    held, _ = sides(frames[-1])
    scored = frames[-1][held & frames[-1][schema.target.name].notna()]
    if len(scored) < MIN_SCORED_ROWS:
        return None
    newest_rest = frames[-1][~held]
    losses: dict[tuple[str, int], np.ndarray | None] = {}
    for name, k in candidate_sizes(len(frames), onsets):
        rows = pd.concat([*frames[-k:-1], newest_rest], ignore_index=True) if k > 1 else newest_rest
        losses[(name, k)] = _proxy_losses(rows, newest_rest, scored, schema, seed)
    ok = {key: v for key, v in losses.items() if v is not None}
    if not ok:
        return None
    best_key = min(ok, key=lambda key: ok[key].mean())
    best = ok[best_key]
    candidates, tied = [], []
    for (name, k), v in losses.items():
        if v is None:
            candidates.append(Candidate(name, k))
            continue
        diff = v - best
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        candidates.append(Candidate(name, k, round(float(v.mean()), 5), round(se, 5)))
        if diff.mean() <= se:
            tied.append(k)
    return Choice(max(tied), tuple(candidates))


def _proxy_losses(train: pd.DataFrame, newest_train: pd.DataFrame, scored: pd.DataFrame, schema: Schema,
                  seed: int) -> np.ndarray | None:
    """Per-row loss on ``scored`` of a linear proxy fitted on ``train`` (log loss for classes,
    squared error on the standardised target for regression); None: nothing to fit.

    A classifier's probabilities are moved to the newest batch's class shares (measured on its
    training rows, which every candidate holds) before scoring: the prior-shift correction of
    Saerens et al. (2002), p'(y|x) proportional to p(y|x) * pi_new(y) / pi_train(y). Without it a
    window whose base rate happens to match the newest batch's wins on calibration alone, and a
    seasonal base rate would cut the window short, which is what item 2 of the issue forbids."""
    from sklearn.linear_model import LogisticRegression, Ridge

    from ratchet.training.model.preprocess import build_preprocessor, frame_for_model, target_values

    target = schema.target
    train = train[train[target.name].notna()]
    if len(train) > PROXY_ROWS:
        train = train.sample(PROXY_ROWS, random_state=seed)
    if len(train) < MIN_SCORED_ROWS:
        return None
    pre = build_preprocessor(schema)
    x = pre.fit_transform(frame_for_model(train, schema))
    x_scored = pre.transform(frame_for_model(scored, schema))
    y, y_scored = target_values(train[target.name], target), target_values(scored[target.name], target)
    if target.is_regression:
        model = Ridge(alpha=1.0).fit(x, y)
        sd = float(np.std(y)) or 1.0
        return ((model.predict(x_scored) - y_scored) / sd) ** 2
    if len(np.unique(y)) < 2:
        return None
    k = len(target.classes)
    model = LogisticRegression(max_iter=300).fit(x, y)
    proba = np.full((len(y_scored), k), 1e-6)
    proba[:, model.classes_.astype(int)] = np.clip(model.predict_proba(x_scored), 1e-6, 1.0)
    newest_y = target_values(newest_train[target.name].dropna(), target)
    shares = lambda v: (np.bincount(v.astype(int), minlength=k) + 1.0) / (len(v) + k)  # noqa: E731 (Laplace)
    proba *= shares(newest_y) / shares(y)
    proba /= proba.sum(axis=1, keepdims=True)
    return -np.log(proba[np.arange(len(y_scored)), y_scored.astype(int)])
