"""Drift evidence that counts only when it matters, and the window chosen by what predicts the
newest batch (train.window: best)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ratchet.core.schema import dump_schema
from ratchet.data.schema_inference import infer_schema
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
from ratchet.runtime.context import load_context
from ratchet.training.window import training_data
from tests.conftest import CONFIG_FILES
from tests.training.helpers import publish_batches


def _monthly(i: int, rows: int, seed: int, *, positives: float | None = None, noise_shift: float = 0.0,
             concept_drift_at: int | None = None) -> pd.DataFrame:
    """A batch of month ``i``: the demo's applicants with a timestamp in that month, a ``noise``
    column no label depends on (shifted by ``noise_shift`` sd), and, with ``positives``, negatives
    dropped until that share of the rows is positive (a prior shift: P(x | y) unchanged)."""
    df = generate_batch(i, rows * 3, seed=seed, concept_drift_at=concept_drift_at)
    if positives is not None:
        n_pos = round(rows * positives)
        pos, neg = df[df[DEMO_TARGET] == 1].head(n_pos), df[df[DEMO_TARGET] == 0].head(rows - n_pos)
        df = pd.concat([pos, neg]).sample(frac=1.0, random_state=i)
    df = df.head(rows).reset_index(drop=True)
    rng = np.random.default_rng(seed * 100 + i)
    start = pd.Timestamp(2024, 1, 1) + pd.DateOffset(months=i)
    df["booked_at"] = (start + pd.to_timedelta(rng.integers(0, 27 * 24, len(df)), unit="h")).strftime("%Y-%m-%dT%H:%M:%S")
    df["noise"] = rng.normal(noise_shift, 1.0, len(df)).round(4)
    return df


def _publish(home, frames):
    ctx = load_context(CONFIG_FILES, home=str(home))
    schema = infer_schema(frames[0], DEMO_TARGET)
    dump_schema(schema, ctx.settings.schema_path)
    (home / "incoming").mkdir(parents=True)
    publish_batches(load_context(CONFIG_FILES, home=str(home)), frames, home / "incoming")


def _window(home, importance=None, with_schema=True, drift=None, **train):
    ctx = load_context(CONFIG_FILES, overrides={"train": train, "drift": drift or {}}, home=str(home))
    return training_data(ctx.repo, "main", ctx.cfg, schema=ctx.schema if with_schema else None, importance=importance)


@pytest.fixture
def seasonal_home(home):
    """Five monthly batches of one concept: a timestamp column, a base rate that moves (0.2 to 0.5)
    and, in the newest, a large shift of a feature no label depends on."""
    shares = [0.3, 0.35, 0.4, 0.35, 0.5]
    frames = [_monthly(i, 800, 3, positives=s, noise_shift=3.0 if i == 4 else 0.0) for i, s in enumerate(shares)]
    _publish(home, frames)
    return home


def test_calendar_parts_the_base_rate_and_an_ignored_feature_do_not_cut_the_window(seasonal_home):
    ctx = load_context(CONFIG_FILES, home=str(seasonal_home))
    assert ctx.schema.column("booked_at").dtype == "datetime"
    importance = {name: 0.1 for name in ctx.schema.feature_names} | {"noise": 0.0}
    one = {"min_drifted_share": 0.1}  # one drifted feature of the demo's seven is an onset
    data = _window(seasonal_home, importance, drift=one, window="since_drift")
    assert len(data.batches) == 5, data.rule
    assert data.rule.startswith("since drift onset: 5 of the last 5 (none found)")
    assert "shifts the champion ignores: noise" in data.rule
    assert "label base-rate shift" in data.rule and "prior shift, not an onset" in data.rule
    # the same walk without the champion's importance: the noise shift is an onset
    assert len(_window(seasonal_home, None, drift=one, window="since_drift").batches) == 1
    # and every column tested, as before (label and timestamp included): cut short too
    assert len(_window(seasonal_home, importance, with_schema=False, drift=one, window="since_drift").batches) < 5


def _importance_of(home) -> dict:
    """What the champion would record: the permutation importance of a quick fit on the window."""
    from ratchet.training.search import permutation_importance, tune_on_commit

    ctx = load_context(CONFIG_FILES, overrides={"tune": {"trials": 1}, "train": {"max_epochs": 3, "window": "all"}},
                       home=str(home))
    data = training_data(ctx.repo, "main", ctx.cfg, schema=ctx.schema)
    trained = tune_on_commit(data, ctx.schema, ctx.cfg, ctx.settings, ctx.registry, trials=1, progress=False)
    again = permutation_importance(trained.predictor, data.test, ctx.schema, ctx.cfg.train.seed)
    assert again == trained.feature_importance  # seeded: the recorded numbers are reproducible
    return trained.feature_importance


@pytest.mark.slow  # a Lightning training: about 30 s on the loaded 2-core machine
def test_permutation_importance_at_training_ranks_a_used_feature_over_noise(seasonal_home):
    importance = _importance_of(seasonal_home)
    assert set(importance) == set(load_context(CONFIG_FILES, home=str(seasonal_home)).schema.feature_names)
    top = max(importance, key=importance.get)
    assert top != "noise" and importance[top] > 0.05
    # below drift.min_importance: its shift is listed, not an alarm
    assert abs(importance["noise"]) < load_context(CONFIG_FILES, home=str(seasonal_home)).cfg.drift.min_importance


def test_best_keeps_every_batch_of_one_concept_and_records_each_candidate(seasonal_home):
    data = _window(seasonal_home, window="best")
    assert len(data.batches) == 5, data.rule
    names = [c["name"] for c in data.candidates]
    assert names[:4] == ["newest 1", "newest 2", "newest 3", "all"]
    assert all(c["loss"] is not None for c in data.candidates)
    assert data.choice_rule.startswith("lowest mean proxy loss over a rolling origin") and data.rule.startswith("best of")
    assert "within 1.96 SE of it, the most data" in data.choice_rule  # train.window_tie_z as shipped


def test_windows_are_judged_by_the_model_itself_on_small_data_by_a_linear_proxy_on_large(seasonal_home):
    """``window_proxy: auto``: one fit of the configured model per candidate and origin where the batches
    hold at most ``window_model_rows`` rows (here 4,000), the linear proxy above; the rule says which."""
    small = _window(seasonal_home, window="best", window_proxy="auto")
    assert small.choice_rule.endswith("proxy: the model itself"), small.choice_rule
    large = _window(seasonal_home, window="best", window_proxy="auto", window_model_rows=1000)
    assert large.choice_rule.endswith("proxy: linear"), large.choice_rule
    assert [c["name"] for c in large.candidates] == [c["name"] for c in small.candidates]
    assert all(c["loss"] is not None for c in small.candidates + large.candidates)
    assert {c["loss"] for c in small.candidates} != {c["loss"] for c in large.candidates}


def test_best_recovers_from_pure_concept_drift_in_one_batch(home):
    """The concept changes in the newest batch only: no profile can see it, and the newest batch
    alone predicts its own held-out rows best."""
    frames = [_monthly(i, 800, 4, concept_drift_at=4) for i in range(5)]
    _publish(home, frames)
    data = _window(home, window="best")
    assert len(data.batches) == 1, data.candidates
    losses = {c["name"]: c["loss"] for c in data.candidates}
    assert losses["newest 1"] < losses["all"] - 0.05


def test_large_batches_do_not_turn_a_small_shift_into_drift():
    """The verdict follows the effect at large n: a shift of 0.02 sd is no drift at 500 or 50,000
    rows a side, one of 0.5 sd is drift at both."""
    from ratchet.core.config import DriftConfig
    from ratchet.data.profile_drift import drift_report
    from ratchet.data.profiling import profile_frame

    rng = np.random.default_rng(0)
    for n in (500, 50_000):
        ref = profile_frame(pd.DataFrame({"x": rng.normal(0, 1, n)}))
        small = profile_frame(pd.DataFrame({"x": rng.normal(0.02, 1, n)}))
        large = profile_frame(pd.DataFrame({"x": rng.normal(0.5, 1, n)}))
        assert not drift_report(ref, small, DriftConfig()).detected
        assert drift_report(ref, large, DriftConfig()).detected
        ignored = drift_report(ref, large, DriftConfig(), importance={"x": 0.0})
        assert not ignored.detected and ignored.ignored_shifts == ["x"] and ignored.drifted_features == ["x"]


def test_best_judges_windows_out_of_time_over_a_rolling_origin():
    """Half-year batches whose label threshold moves with the season (a month column says which):
    the newest batch alone fits its own held-out rows, which share its season, but it cannot
    predict the other half of the year. The rolling origin scores the two batches before the
    newest out of time, so the one-batch window loses to windows spanning both seasons."""
    from ratchet.training.choice import choose
    from ratchet.training.window import _sides

    rng = np.random.default_rng(5)
    frames = []
    for i in range(6):
        month = rng.integers(1, 7, 400) + 6 * (i % 2)
        x = rng.normal(0, 1, 400)
        frames.append(pd.DataFrame({"x": x.round(4), "month": month,
                                    "label": (x - 0.75 + 1.5 * (month >= 7) > 0).astype(int)}))
    schema = infer_schema(pd.concat(frames, ignore_index=True), "label")

    def sides(df):
        return _sides(df, 0.15, 0.2, 7, schema.row_key)

    rolling = {c.name: c.loss for c in choose(frames, schema, sides, 7, {}).candidates}
    alone = {c.name: c.loss for c in choose(frames, schema, sides, 7, {}, origins=1).candidates}
    assert rolling["newest 1"] > rolling["all"] + 0.1, rolling
    assert abs(alone["newest 1"] - alone["all"]) < rolling["newest 1"] - rolling["all"], alone  # in-season: alike
    assert choose(frames, schema, sides, 7, {}).batches >= 2


def test_an_unknown_proxy_is_refused_in_one_line():
    from ratchet.training.choice import choose

    with pytest.raises(ValueError, match="unknown window-choice proxy 'boost'; expected one of forest, linear"):
        choose([], None, None, 0, {}, proxy="boost")


def _turning(seed: int, batches: int = 8, rows: int = 200) -> list[pd.DataFrame]:
    """A decision boundary that turns by 0.15 rad every batch, with label noise: each older batch is
    a little more wrong about the newest, and no batch alone holds enough rows."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(batches):
        x1, x2 = rng.normal(0, 1, rows), rng.normal(0, 1, rows)
        y = (np.cos(0.15 * i) * x1 + np.sin(0.15 * i) * x2 + rng.normal(0, 1.0, rows) > 0).astype(int)
        frames.append(pd.DataFrame({"x1": x1.round(4), "x2": x2.round(4), "label": y}))
    return frames


def test_recency_weighting_keeps_the_newest_batch_and_halves_a_batch_every_half_life():
    from ratchet.training.choice import recency_sample, recency_weight
    from ratchet.training.window import _sides

    frames = [f.assign(batch=i) for i, f in enumerate(_turning(0, batches=5, rows=4000))]
    kept = recency_sample(frames, 2.0, seed=7)
    assert kept[-1].equals(frames[-1])
    for age, part in zip(range(4, 0, -1), kept[:-1], strict=True):
        assert abs(len(part) / 4000 - 0.5 ** (age / 2)) < 0.03, (age, len(part))
    assert all(a.equals(b) for a, b in zip(kept, recency_sample(frames, 2.0, seed=7), strict=True))  # the same rows
    # sampled by another hash than the split's: the kept rows fall on each side as all rows do
    held, _ = _sides(pd.concat(kept[:-1]), 0.15, 0.2, 7)
    assert abs(held.mean() - 0.2) < 0.03
    assert recency_weight(5, 2.0) == pytest.approx(1 + 2**-0.5 + 0.5 + 2**-1.5 + 0.25)


def test_a_turning_boundary_is_predicted_better_by_the_recency_weighted_window_than_by_all():
    """Every batch still says something about the newest, less the older it is: weighting by recency
    beats all batches alike on every seed; where it also ties with the best it is chosen (the most
    data), and the choice says so."""
    from ratchet.training.choice import choose
    from ratchet.training.window import _sides

    weighted = "all, recency-weighted (half-life 2)"
    chosen = set()
    for seed in range(4):
        frames = _turning(seed)
        schema = infer_schema(pd.concat(frames, ignore_index=True), "label")
        choice = choose(frames, schema, lambda df, s=schema: _sides(df, 0.15, 0.2, 7, s.row_key), 7, {})
        losses = {c.name: c.loss for c in choice.candidates}
        assert losses[weighted] < losses["all"], losses
        row = next(c for c in choice.candidates if c.name == weighted)
        assert row.half_life == 2.0 and row.to_dict()["half_life"] == 2.0
        chosen.add((choice.chosen, choice.half_life))
    assert (weighted, 2.0) in chosen, chosen


def test_less_data_wins_only_beyond_the_tie_band():
    """``tie_z`` standard errors of the paired loss difference: at 0 the lowest loss wins outright; a
    candidate the band reaches ties and the most data (total weight) wins; a wide band ties them all."""
    from ratchet.training.choice import choose
    from ratchet.training.window import _sides

    frames = _turning(2)
    schema = infer_schema(pd.concat(frames, ignore_index=True), "label")

    def pick(z):
        return choose(frames, schema, lambda df: _sides(df, 0.15, 0.2, 7, schema.row_key), 7, {}, tie_z=z)

    lowest = min(pick(0).candidates, key=lambda c: c.loss)
    assert (pick(0).batches, pick(0).half_life) == (lowest.batches, lowest.half_life)
    shipped = pick(1.96)
    heaviest = max((c for c in shipped.candidates if c.loss - lowest.loss <= 1.96 * c.se), key=lambda c: c.weight)
    assert (shipped.batches, shipped.half_life) == (heaviest.batches, heaviest.half_life)
    assert "within 1.96 SE" in shipped.rule and "within 0 SE" in pick(0).rule
    assert (pick(1e6).batches, pick(1e6).half_life) == (len(frames), None)  # everything ties: all batches
    assert len({pick(0).chosen, shipped.chosen, pick(1e6).chosen}) == 3  # here the band decides (seed 2)


def test_a_recency_weighted_choice_trains_on_the_sampled_rows(seasonal_home, monkeypatch):
    import ratchet.training.choice as choice_module
    from ratchet.training.choice import Candidate, Choice

    everything = _window(seasonal_home, window="all")
    monkeypatch.setattr(choice_module, "choose", lambda frames, *a, **k: Choice(
        len(frames), (Candidate("all, recency-weighted (half-life 2)", len(frames), 0.5, 0.0, 2.0),), half_life=2.0))
    data = _window(seasonal_home, window="best")
    assert data.batches == everything.batches and "recency-weighted" in data.rule
    rows = lambda d: len(d.train) + len(d.val) + len(d.test)  # noqa: E731
    assert rows(data) < 0.7 * rows(everything), (rows(data), rows(everything))


def test_the_linear_proxy_reads_the_calendar_on_its_circle():
    """December next to January, and a summer-high label that no linear function of the month's
    number fits: the proxy's sine and cosine of each periodic part (a missing date: 0 and 0)."""
    from ratchet.training.choice import _predict, cyclic_parts
    from ratchet.training.model.preprocess import frame_for_model

    rng = np.random.default_rng(3)
    days = pd.Timestamp(2020, 1, 1) + pd.to_timedelta(rng.integers(0, 3 * 365, 3000), unit="D")
    month = days.month.to_numpy()
    frame = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "x": rng.normal(0, 1, 3000).round(4),
                          "label": ((month >= 5) & (month <= 9)).astype(int)})
    frame.loc[0, "date"] = None
    schema = infer_schema(frame, "label")
    parts = cyclic_parts(frame_for_model(frame, schema), schema)
    assert parts.shape == (3000, 2 * sum(p in ("month", "day", "dayofweek") for p in schema.column("date").parts))
    assert not parts[0].any() and np.isfinite(parts).all()  # the missing date: the circle's centre
    dec, jan = (frame_for_model(pd.DataFrame({"date": [d], "x": [0.0], "label": [0]}), schema) for d in ("2021-12-15", "2022-01-15"))
    assert np.abs(cyclic_parts(dec, schema)[0, :2] - cyclic_parts(jan, schema)[0, :2]).max() < 0.6
    train, test = frame.iloc[:2000], frame.iloc[2000:]
    y = train["label"].to_numpy()
    proba = _predict(train, y, test, schema, 0, "linear")
    accuracy = (proba.argmax(axis=1) == test["label"].to_numpy()).mean()
    assert accuracy > 0.9, accuracy  # a season: not linear in the month's number, linear on its circle
