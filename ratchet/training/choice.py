"""The training window chosen by what predicts the newest data.

Each candidate window (the newest k batches for a few k, every batch, every batch recency-weighted,
and the batches since each onset any evidence found) is judged by a cheap proxy model over a
rolling origin of ``ORIGINS``:
the newest batch's held-out rows (the rows the split sets aside for the gate, so no candidate
trains on them; the proxy fits on the candidate's older batches and the newest batch's other
rows), and each of the two batches before it, whole and out of time (the proxy fits on the k
batches before that one). Each origin's mean per-row loss weighs the same; the lowest mean over
origins wins; a candidate within ``TIE_Z`` (``train.window_tie_z``, 1.96) standard errors of the
best (of the paired per-row loss differences) ties with it, and a tie goes to the candidate with
the most data, since more data lowers variance when the evidence cannot tell the windows apart.

Recency weighting (``HALF_LIFE``, from 4 batches on): every batch, a batch ``a`` batches older than
the newest weighing ``0.5 ** (a / 2)``, realised by sampling each batch's rows in that proportion
(``recency_sample``), so the proxies and the training take it as any other window. A tie between
candidates goes to the one with the greatest total weight (``Candidate.weight``: its batches, or
the sum of the weights), so "all" wins a tie with it and it wins one with the newest 3. On a
decision boundary that turns a little every batch (``tests/training/test_window_choice.py``) it
predicts the newest batch better than all batches alike on every seed tried. On seattle-weather
(``python -m benchmarks.window_agreement --origins 3 --proxies linear --epochs 15``) its full
trainings scored 0.862, 0.739, 0.718 and 0.755 on the next half-year after batches 4 to 7 (all
batches 0.646, 0.723, 0.718, 0.728; the newest 2 0.492, 0.696, 0.680, 0.690), but the linear proxy
ranks it first only once there (after 5 batches, with the calendar's circles below, where all
batches tie with it and win as more data; in the loop it was chosen once), and the newest 2 first
after 7 batches, by more than a standard error.

The linear proxy also reads each date's month, day, weekday, hour and minute on their circles
(``cyclic_parts``: the sine and cosine over the period), which a linear model needs to fit a
season at all. On seattle-weather it moved the choice toward longer windows: ``python -m
benchmarks.window_agreement --origins 3 --proxies linear --epochs 15`` gave the chosen windows'
next-half-year accuracy 0.741 against 0.728 before (hindsight 0.767, all batches 0.706, the newest
3 0.740; the mean Spearman of its whole ranking against the full trainings +0.01 against +0.15:
it ranks the long windows better and the short ones worse), and in the loop
(``benchmarks/drift_recovery.py --streams seattle --peers ratchet``) ratchet's prequential
accuracy 0.695 against 0.675 (all data 0.700). Streams without a date are untouched.

Why 1.96 standard errors, and not Breiman's one (the rule before): the proxy is a biased judge of
the window the served model needs. It learns less from more rows than the network does, so it
leans to short windows (above: the newest 2 first on seattle-weather where the network gained
from every half-year), and a band of one standard error lets a shorter window win on evidence a
one-sided test would give about one chance in six. At 1.96 less data wins only where the proxy's
evidence is significant at 5% (two-sided), the level the gate itself tests at (``gate.alpha``):
the window, like the champion, moves only on significant evidence. Right after an onset the
evidence is many standard errors wide, and the synthetic streams recover as before. Measured:
``python benchmarks/drift_recovery.py --streams S --peers ratchet``: seattle 0.702 against 0.695
with one standard error (all data 0.700; per batch 0.514 0.717 0.856 0.728 0.707 0.690: after
7 half-years the newest 3 tie with the newest 2 and are promoted, and score 0.690 on 2015H2 where
the kept champion scored 0.647); concept 0.862, both 0.863, agrawal 0.856 (each recovering in one
batch) and gradual 0.832 (two), as with one standard error. Tried before the calendar's circles
joined the proxy, wider bands had chosen the same windows there. The loop's figure is one training
per window; averaged over five training seeds (``python -m benchmarks.window_agreement --origins 3
--proxies linear --epochs 15 --tie-z 1,1.96 --seeds 5``) the chosen windows' next-half-year
accuracy is 0.730 with either band (all batches 0.734, the newest 3 0.731, hindsight 0.752): the
wider band took all batches after 4 half-years (0.755 where the newest 3 scored 0.803) and after
6 (0.718 against 0.693), and the weighted window after 7 (0.736 against the newest 2's 0.711). On
seattle-weather the proxy's ranking does not follow the network's (mean Spearman -0.00), and no
band makes the choice better than every batch there; the band decides how often it may leave
them.

Why the newest batch's held-out rows at all: right after an onset the newest batch is the only
one of the new concept, so a fit that leaves it out cannot learn the new concept in any window;
with the older origins alone every candidate would score alike there, the tie would keep all
data, and recovery would take two batches instead of one. Why not those rows alone (the rule
before the rolling origin): they share the newest batch's time with its training rows, so they
are not out of time. On seattle-weather in half-year batches the newest batch alone covers half
the seasons, and its own held-out rows (about 36 a batch) preferred the newest one or two
batches while the next half-year was predicted best by a year or more. Measured with
``python -m benchmarks.window_agreement`` (seattle-weather, the windows chosen after batches 3 to
7, full trainings of the shipped MLP at 4 epochs scored on the next batch): Spearman between the
choice's scores and the full trainings' log loss on the next batch, averaged over the five
times, +0.02 with the newest batch's held-out rows alone, +0.54 with the rolling origin of 3;
the chosen window's next-batch accuracy 0.640 and 0.645 (the best candidate in hindsight 0.658,
all batches 0.619, the newest 3 0.632). At the shipped 15 epochs (``--epochs 15``) the MLP learns
more from more rows and the agreement is looser: -0.14 and +0.24; next-batch accuracy 0.733 and
0.728 (hindsight 0.764, all 0.706, the newest 3 0.740): the proxy, which learns from fewer rows
than the MLP needs, still prefers the newest 2 or 3 batches where the MLP would take more.

The model itself (``window_proxy: model``, or ``auto``: while every batch together holds at most
``train.window_model_rows`` rows, 10,000): one fit of the configured model (no search) per
candidate and origin, judged as the proxies are. On seattle-weather (1,461 rows) it costs about 15
fits of a second or two a choice, and it reads what the proxies cannot, such as the date's year.
``python -m benchmarks.window_agreement --origins 3 --proxies linear,model --epochs 15``: the
chosen window's next-batch accuracy 0.741 against the linear proxy's 0.728 (hindsight 0.764, all
0.706, the newest 3 0.740). In the loop (``benchmarks/drift_recovery.py --peers ratchet``, with
``train.window_proxy: auto``) ratchet's prequential accuracy on seattle 0.687 against 0.675 with the
linear proxy, but on the gradual drift 0.811 against 0.832: at the batch a quarter on the new rule
the model judged "since the onset" (two batches) best where the linear proxy kept the newest one,
and its challenger scored 0.399 on the final regime against 0.701; and on agrawal 0.831 against
0.856; concept, both, none and feature as with the linear proxy. So the linear proxy stays the
default and the model is opt-in. On seattle both still keep the newest 2 or 3 half-years after
2015H1 where all of them scored better on the next one: on the three origins before, every window reaching back to 2012 (whose labels
were defined otherwise) lost, in log loss as in errors (at the newest origin 0.185 wrong with the
newest 2, 0.320 with all).

Why a proxy and not a full training per candidate on larger data: one Optuna study per candidate
multiplies the training's cost by the number of candidates (three origins: by three times that). The proxy fits
on the training's own preprocessing (``build_preprocessor``); its rows are capped (``PROXY_ROWS``,
a seeded sample) so the choice stays cheap on large batches. Gradient boosting (tried first) took
tens of seconds per choice on a loaded 2-core machine (its OpenMP threads contend), so it was
dropped.

Why a linear proxy (``PROXY``): a random forest (``proxy="forest"``: 100 trees, leaves of at least
3 rows, one thread; about 2 s a choice on the loaded machine) can learn interactions a linear model
cannot, such as seattle-weather's regimes told apart by the date's calendar parts, where the
linear proxy keeps only the newest year after every batch from the 4th on. Measured with
``python -m benchmarks.window_agreement --origins 3 --proxies forest,linear --epochs 15`` (the
windows chosen after batches 3 to 7, full trainings of the shipped MLP at 15 epochs scored on the
next batch): the chosen window's next-batch accuracy 0.745 with the forest, 0.728 with the linear
proxy (hindsight 0.764, all batches 0.706, the newest 3 0.740); Spearman against the full
trainings' next-batch log loss +0.08 and +0.24. But in the loop (``benchmarks/drift_recovery.py
--streams seattle`` at 15 epochs, where onset candidates join and the gate decides) the forest's
windows did worse: ratchet's prequential accuracy 0.561 against 0.605, its ungated challenger
0.629 against 0.673 (one full-training noise draw per window: the network's next-batch accuracy
moved from 0.49 to 0.87 between two adjacent windows). Neither measurement is decisive on five or
six half-years; the linear proxy stays, the forest is there to measure again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ratchet.core.schema import Schema

PROXY_ROWS = 20_000  # rows a candidate's proxy fits on at most (a seeded sample of its rows)
MIN_SCORED_ROWS = 20  # fewer held-out rows in the newest batch: no evidence to choose by
ORIGINS = 3  # the newest batch's held-out rows and the two batches before it, each scored out of time
# the proxy fitted per candidate and origin: "linear" (logistic regression; ridge for regression) or
# "forest" (a random forest of FOREST_TREES trees); see the module docstring for why the linear one
PROXIES = ("forest", "linear")
PROXY = "linear"
FOREST_TREES = 100
FOREST_TREE_ROWS = 4000  # rows each tree draws at most (its bootstrap sample): bounds the forest's cost on large batches
RULE = ("lowest mean proxy loss over a rolling origin (the newest batch's held-out rows, each of the 2 batches "
        "before it out of time); within {z:g} SE of it, the most data (total weight)")
# a candidate whose mean loss is within TIE_Z standard errors of the lowest ties with it (train.window_tie_z):
# the two-sided 5% normal quantile, so less data wins only on significant evidence (module docstring: why)
TIE_Z = 1.96


# recency weighting: every batch, a batch a batches older than the newest weighing 0.5 ** (a / h)
HALF_LIFE = 2.0  # batches (h)
RECENCY_SALT = 0x5EC0  # mixed into the seed of the rows' hash that samples them (not the split's hash)


@dataclass(frozen=True)
class Candidate:
    name: str  # "newest 3", "all", "since onset (feature profiles)", "all, recency-weighted (half-life 2)"
    batches: int
    loss: float | None = None  # mean per-row loss on the newest batch's held-out rows (None: not scored)
    se: float | None = None  # standard error of its paired difference from the best candidate
    half_life: float | None = None  # recency-weighted (batches): see recency_sample; None: every row weighs 1

    @property
    def weight(self) -> float:
        """Its batches' total weight: how much data it holds, which decides a tie."""
        return self.batches if self.half_life is None else recency_weight(self.batches, self.half_life)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Choice:
    batches: int
    candidates: tuple[Candidate, ...]
    rule: str = RULE.format(z=TIE_Z)
    half_life: float | None = None  # the chosen window's recency weighting (None: none)

    @property
    def chosen(self) -> str:
        """The chosen window's name(s): every candidate of its size and weighting ("newest 3 = since onset (...)")."""
        return " = ".join(c.name for c in self.candidates
                          if c.batches == self.batches and c.half_life == self.half_life)


def recency_weight(batches: int, half_life: float) -> float:
    """The total weight of ``batches`` batches, the newest weighing 1 and each older one half as much
    every ``half_life`` batches."""
    return float(sum(0.5 ** (a / half_life) for a in range(batches)))


def recency_sample(frames: list[pd.DataFrame], half_life: float, seed: int) -> list[pd.DataFrame]:
    """``frames`` (oldest first) recency-weighted: the rows of the frame ``a`` frames older than the
    last, each kept with probability ``0.5 ** (a / half_life)``, by a hash of the row (the same rows
    at every training, as a row's split side is). Why sampling and not weights on the loss: the
    training, its search, its early stopping and the proxies then take the window as they take any
    other, and a row's expected weight is the same; the price is the variance of the sample, on
    the older batches, whose rows weigh little anyway."""
    from ratchet.data.rows import unit_interval

    last = len(frames) - 1
    return [f if i == last or f.empty else f[unit_interval(f, seed ^ RECENCY_SALT) < 0.5 ** ((last - i) / half_life)]
            for i, f in enumerate(frames)]


def proxy_for(train_cfg, schema: Schema, rows: int, sides) -> str | Callable[[pd.DataFrame], object]:
    """The proxy ``train_cfg.window_proxy`` names for ``rows`` rows in all (``auto``: the model itself up
    to ``window_model_rows``, else ``PROXY``): a name of ``PROXIES``, or the model itself, a callable
    fitting ``ratchet.training.model.fit`` at ``train_cfg``'s parameters on a frame's training split."""
    name = train_cfg.window_proxy
    if name == "auto":
        name = "model" if rows <= train_cfg.window_model_rows else PROXY
    if name != "model":
        return name
    from ratchet.training.model.fit import fit

    def model(frame: pd.DataFrame):
        held, val = sides(frame)
        return fit(frame[~held & ~val], frame[val], schema, train_cfg, progress=False).predictor

    return model


def candidate_sizes(total: int, onsets: dict[str, int]) -> list[tuple[str, int, float | None]]:
    """(name, batches, half-life): the newest 1, 2, 3 and 6 batches, all of them, all of them
    recency-weighted (from 4 batches on: on fewer it is nearly the newest few), and one per onset source."""
    out = [(f"newest {k}", k, None) for k in (1, 2, 3, 6) if k < total] + [("all", total, None)]
    if total > 3:
        out.append((f"all, recency-weighted (half-life {HALF_LIFE:g})", total, HALF_LIFE))
    out += [(f"since onset ({source})", n, None) for source, n in onsets.items()]
    return out


def choose(frames: list[pd.DataFrame], schema: Schema, sides, seed: int, onsets: dict[str, int],
           origins: int = ORIGINS, proxy: str | Callable = PROXY, tie_z: float = TIE_Z) -> Choice | None:
    """The window of ``frames`` (oldest first) whose proxy best predicts the newest data, over a
    rolling origin: the newest frame's held-out rows (fitted with its other rows) and each of the
    ``origins - 1`` frames before it whole, out of time (fitted on the k frames before that one);
    candidates within ``tie_z`` standard errors of the lowest loss tie, and the most data wins.
    None when the newest batch holds too few held-out rows. ``sides(df)`` gives (held-out, val) masks."""
    if not callable(proxy) and proxy not in PROXIES:
        raise ValueError(f"unknown window-choice proxy {proxy!r}; expected one of {', '.join(PROXIES)}")
    held, _ = sides(frames[-1])
    scored = frames[-1][held & frames[-1][schema.target.name].notna()]
    if len(scored) < MIN_SCORED_ROWS:
        return None
    newest_rest = frames[-1][~held]
    origins = range(1, min(origins, len(frames) - 1))  # older origins need a frame before them to fit on
    losses: dict[tuple[str, int, float | None], list[np.ndarray] | None] = {}

    def window(parts: list[pd.DataFrame], half_life: float | None) -> pd.DataFrame:
        return pd.concat(parts if half_life is None else recency_sample(parts, half_life, seed), ignore_index=True)

    for name, k, half_life in candidate_sizes(len(frames), onsets):
        rows = window([*frames[-k:-1], newest_rest], half_life) if k > 1 else newest_rest
        found = [_proxy_losses(rows, newest_rest, scored, schema, seed, proxy)]
        for j in origins:  # frame -1-j scored whole by the k frames before it (as many as there are)
            end = len(frames) - 1 - j
            found.append(_proxy_losses(window(frames[max(0, end - k):end], half_life), frames[end],
                                       frames[end], schema, seed, proxy))
        losses[(name, k, half_life)] = None if found[0] is None else found
    scoreable = [v for v in losses.values() if v is not None]
    if not scoreable:
        return None
    # an older origin counts only where every candidate could fit on it (one class alone: no fit)
    keep = [0] + [j for j in origins if all(v[j] is not None for v in scoreable)]
    losses = {key: None if v is None else [v[j] for j in keep] for key, v in losses.items()}
    ok = {key: v for key, v in losses.items() if v is not None}
    best_key = min(ok, key=lambda key: _score(ok[key]))
    best = ok[best_key]
    candidates, tied = [], []
    for (name, k, half_life), v in losses.items():
        if v is None:
            candidates.append(Candidate(name, k, half_life=half_life))
            continue
        diffs = [a - b for a, b in zip(v, best, strict=True)]
        # the standard error of the origins' mean of paired mean differences (origins independent)
        se = float(np.sqrt(sum(d.var(ddof=1) / len(d) for d in diffs if len(d) > 1)) / len(diffs))
        candidates.append(Candidate(name, k, round(_score(v), 5), round(se, 5), half_life))
        if _score(diffs) <= tie_z * se:
            tied.append(candidates[-1])
    # a tie goes to the most data: the greatest total weight (then the most batches, unweighted first)
    won = max(tied, key=lambda c: (c.weight, c.batches, c.half_life is None))
    return Choice(won.batches, tuple(candidates),
                  f"{RULE.format(z=tie_z)}; proxy: {'the model itself' if callable(proxy) else proxy}",
                  won.half_life)


def _score(per_origin: list[np.ndarray]) -> float:
    """The mean over origins of each origin's mean per-row loss: every origin weighs the same, so
    the newest batch's few held-out rows (right after an onset, the only rows of the new concept)
    are not outvoted by the many rows of the older, whole batches."""
    return float(np.mean([v.mean() for v in per_origin]))


def _proxy_losses(train: pd.DataFrame, newest_train: pd.DataFrame, scored: pd.DataFrame, schema: Schema,
                  seed: int, proxy: str | Callable = PROXY) -> np.ndarray | None:
    """Per-row loss on ``scored`` of a proxy (``PROXIES``) fitted on ``train`` (log loss for classes,
    squared error on the standardised target for regression); None: nothing to fit.

    A classifier's probabilities are moved to the class shares of ``newest_train`` before scoring
    (at the first origin the newest batch's training rows, which every candidate holds; at an older
    origin the scored batch itself, whose base rate every candidate then gets alike): the prior-shift correction of
    Saerens et al. (2002), p'(y|x) proportional to p(y|x) * pi_new(y) / pi_train(y). Without it a
    window whose base rate happens to match the newest batch's wins on calibration alone, and a
    seasonal base rate would cut the window short, which is what item 2 of the issue forbids."""
    from ratchet.training.model.preprocess import target_values

    target = schema.target
    train = train[train[target.name].notna()]
    if len(train) > PROXY_ROWS:
        train = train.sample(PROXY_ROWS, random_state=seed)
    if len(train) < MIN_SCORED_ROWS:
        return None
    y, y_scored = target_values(train[target.name], target), target_values(scored[target.name], target)
    if not target.is_regression and len(np.unique(y)) < 2:
        return None
    predicted = _predict(train, y, scored, schema, seed, proxy)
    if target.is_regression:
        return ((predicted - y_scored) / (float(np.std(y)) or 1.0)) ** 2
    k = len(target.classes)
    newest_y = target_values(newest_train[target.name].dropna(), target)
    shares = lambda v: (np.bincount(v.astype(int), minlength=k) + 1.0) / (len(v) + k)  # noqa: E731 (Laplace)
    proba = predicted * (shares(newest_y) / shares(y))
    proba /= proba.sum(axis=1, keepdims=True)
    return -np.log(proba[np.arange(len(y_scored)), y_scored.astype(int)])


# the periodic calendar parts (ratchet.data.datetimes.PARTS) and their periods
PERIODS = {"month": 12, "day": 31, "dayofweek": 7, "hour": 24, "minute": 60}


def cyclic_parts(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    """(rows, 2 per periodic part): the sine and cosine of each datetime feature's month, day, weekday,
    hour and minute over its period (0 and 0 for a missing date), for the linear proxy. Why: a linear
    model reads a part's number as a quantity, so December and January sit at its two ends and a
    season, high in summer and low in winter, cannot be fitted at all; on the circle it is a sum of a
    sine and a cosine. The model itself reads the parts' numbers through its hidden layers. Measured
    on seattle-weather (the choice after batches 3 to 7, each window's full training scored on the next
    half-year, ``benchmarks/window_agreement.py``): the chosen windows' mean next-batch accuracy
    0.741 with these features, 0.728 without."""
    from ratchet.training.model.preprocess import derived_name

    out = []
    for c in schema.features:
        if c.dtype != "datetime":
            continue
        for part in c.parts:
            if part in PERIODS:
                angle = 2 * np.pi * frame[derived_name(c.name, part)].astype(float).to_numpy() / PERIODS[part]
                out += [np.nan_to_num(np.sin(angle)), np.nan_to_num(np.cos(angle))]
    return np.column_stack(out) if out else np.zeros((len(frame), 0))


def _predict(train: pd.DataFrame, y: np.ndarray, scored: pd.DataFrame, schema: Schema, seed: int,
             proxy: str | Callable) -> np.ndarray:
    """The proxy fitted on ``train`` (labels ``y``), predicting ``scored``: numbers for regression,
    else (rows, classes) probabilities floored above 0. A callable proxy is the model itself:
    ``proxy(train)`` fits it (``proxy_for``)."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    from ratchet.training.model.preprocess import build_preprocessor, frame_for_model

    regression = schema.target.is_regression
    if callable(proxy):
        model = proxy(train)
        if regression:
            return np.asarray(model.predict(scored), dtype=float)
        return np.clip(np.asarray(model.predict_proba(scored), dtype=float), 1e-6, 1.0)
    pre = build_preprocessor(schema)
    train_frame, scored_frame = frame_for_model(train, schema), frame_for_model(scored, schema)
    x, x_scored = pre.fit_transform(train_frame), pre.transform(scored_frame)
    if proxy == "linear":  # the calendar's cycles as a linear model can read them (a forest reads the numbers)
        x, x_scored = np.hstack([x, cyclic_parts(train_frame, schema)]), np.hstack([x_scored, cyclic_parts(scored_frame, schema)])
    if regression:
        model = (RandomForestRegressor(n_estimators=FOREST_TREES, min_samples_leaf=3, random_state=seed, n_jobs=1,
                                       max_samples=min(len(y), FOREST_TREE_ROWS))
                 if proxy == "forest" else Ridge(alpha=1.0)).fit(x, y)
        return model.predict(x_scored)
    if proxy == "forest":
        # min_samples_leaf 3: no leaf fits one row; 1 job: the choice runs beside the training's threads
        model = RandomForestClassifier(n_estimators=FOREST_TREES, min_samples_leaf=3, random_state=seed, n_jobs=1,
                                       max_samples=min(len(y), FOREST_TREE_ROWS))
    else:
        model = LogisticRegression(max_iter=300)
    model.fit(x, y)
    # a forest's leaves give classes they never held probability 0: clipped at 1e-3, so that one row
    # cannot outweigh the rest of the mean log loss (log 1e-6 is 14 times the loss of a coin flip)
    low = 1e-3 if proxy == "forest" else 1e-6
    proba = np.full((len(scored), len(schema.target.classes)), low)
    proba[:, model.classes_.astype(int)] = np.clip(model.predict_proba(x_scored), low, 1.0)
    return proba
