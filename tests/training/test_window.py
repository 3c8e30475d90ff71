"""Training windows: all batches, the last K, or the batches since the latest drift onset."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from ratchet.core.schema import dump_schema
from ratchet.data.schema_inference import infer_schema
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
from ratchet.runtime.context import load_context
from ratchet.training.window import training_data
from tests.conftest import CONFIG_FILES
from tests.training.helpers import publish_batches


@pytest.fixture
def drifted_home(home):
    """Four clean batches, then two after data and concept drift, published through ingest."""
    ctx = load_context(CONFIG_FILES, home=str(home))
    frames = [generate_batch(i, 600, seed=5, data_drift_at=4, concept_drift_at=4) for i in range(6)]
    dump_schema(infer_schema(frames[0], DEMO_TARGET), ctx.settings.schema_path)
    folder = home / "incoming"
    folder.mkdir(parents=True)
    publish_batches(ctx, frames, folder)
    return home


def _window(home, **train):
    ctx = load_context(CONFIG_FILES, overrides={"train": train}, home=str(home))
    return training_data(ctx.repo, "main", ctx.cfg, schema=ctx.schema)


def test_since_drift_trains_on_the_batches_after_the_onset_only(drifted_home):
    data = _window(drifted_home, window="since_drift")
    assert len(data.batches) == 2 and data.rule == "since drift onset: 2 of the last 6 (feature profiles)"
    everything = _window(drifted_home, window="all")
    assert len(everything.batches) == 6 and everything.rule == "all"
    assert data.batches == everything.batches[-2:]
    # the held-out rows the gate scores come from the same window
    assert len(data.train) + len(data.val) + len(data.test) == 2 * 600


def test_the_gate_reads_the_same_held_out_rows_the_training_put_aside(drifted_home):
    """held_out_rows reads batch by batch and keeps only the held-out side: the same rows, in the
    same order, as the whole window's split, without building its train and validation frames."""
    from ratchet.training.window import held_out_rows

    ctx = load_context(CONFIG_FILES, home=str(drifted_home))
    for newest in (2, None):
        data = _window(drifted_home, window="last", window_batches=newest) if newest else _window(drifted_home, window="all")
        held = held_out_rows(ctx.repo, data.data_commit, ctx.cfg, newest)
        assert held.batches == data.batches and held.data_commit == data.data_commit
        pd.testing.assert_frame_equal(held.rows, data.test)
        assert held.window == data.window.replace(f"({data.rule})", f"(last {len(data.batches)})")


def test_since_drift_is_capped_by_window_batches_and_last_k_is_still_there(drifted_home):
    capped = _window(drifted_home, window="since_drift", window_batches=1)
    assert len(capped.batches) == 1
    last = _window(drifted_home, window="last", window_batches=3)
    assert len(last.batches) == 3 and last.rule == "last 3"


def test_since_drift_without_drift_takes_every_batch(home):
    ctx = load_context(CONFIG_FILES, home=str(home))
    frames = [generate_batch(i, 600, seed=5) for i in range(4)]
    dump_schema(infer_schema(frames[0], DEMO_TARGET), ctx.settings.schema_path)
    (home / "incoming").mkdir(parents=True)
    publish_batches(ctx, frames, home / "incoming")
    data = _window(home, window="since_drift")
    assert len(data.batches) == 4 and data.rule == "since drift onset: 4 of the last 4 (none found)"


def _concept_home(home, onset_at: int | None, batches: int = 6, rows: int = 300):
    """Batches of one stationary feature distribution whose commits carry the champion's verdicts,
    as ingest writes them: detected from ``onset_at`` on (None: never)."""
    from benchmarks.drift_recovery import TARGET, stream
    from ratchet.data import ingest
    from ratchet.monitoring.concept import Baseline, Sample, check

    ctx = load_context(CONFIG_FILES, home=str(home))
    frames = stream("concept", batches, rows, onset_at if onset_at is not None else batches, seed=1)
    dump_schema(infer_schema(frames[0], TARGET), ctx.settings.schema_path)
    base, history, ids = Baseline("1", 600, 0.02), [], []
    for i, df in enumerate(frames):
        path = home / f"b{i}.csv"
        df.to_csv(path, index=False)
        audited = ingest.audit_batch(path, ctx.schema)
        error = 0.3 if onset_at is not None and i >= onset_at else 0.02
        verdict = check(history, Sample(audited.batch_id, rows, error), base, ctx.cfg.drift)
        history.append(Sample(audited.batch_id, rows, error))
        audited = replace(audited, metadata=verdict.metadata())
        branch = ingest.stage_batch(ctx.repo, audited, path, ctx.cfg.data)
        ingest.commit_batch(ctx.repo, branch, audited)
        ingest.publish_batch(ctx.repo, branch, audited, ctx.cfg.data)
        ids.append(audited.batch_id)
    return ids


def test_since_drift_starts_at_a_concept_onset_the_profiles_cannot_see(home):
    ids = _concept_home(home, onset_at=4)
    data = _window(home, window="since_drift")
    assert [b.rsplit("/", 1)[-1].removesuffix(".parquet") for b in data.batches] == ids[4:]
    assert data.rule == "since drift onset: 2 of the last 6 (batch scores)"
    assert data.holdout_batches is None  # the window is the post-onset batches: the gate scores them all


def test_thin_evidence_adds_older_batches_and_the_gate_still_scores_after_the_onset(home):
    _concept_home(home, onset_at=5)  # the onset is the newest batch: 300 rows
    data = _window(home, window="since_drift", min_window_rows=800)
    assert len(data.batches) == 3 and data.holdout_batches == 1
    assert data.rule.endswith("+2 older batch(es) for min_window_rows 800")
    only = _window(home, window="since_drift")
    assert len(only.batches) == 1


def test_a_live_feedback_onset_opens_the_window_at_the_first_batch_after_it(home):
    from ratchet.training.window import batch_paths, live_onset

    _concept_home(home, onset_at=None)
    ctx = load_context(CONFIG_FILES, overrides={"train": {"window": "since_drift"}}, home=str(home))
    paths = batch_paths(ctx.repo, "main", ctx.cfg.data.batch_prefix)
    stamp = pd.to_datetime(paths[3].rsplit("/", 1)[-1][:22], format="%Y%m%dT%H%M%S%fZ", utc=True).timestamp()
    assert live_onset(paths, stamp) == 3
    data = training_data(ctx.repo, "main", ctx.cfg, live_since=stamp)
    assert len(data.batches) == 3 and "(live feedback)" in data.rule


def test_an_unknown_window_rule_is_named_in_the_error(home):
    with pytest.raises(ValueError, match="window"):
        load_context(CONFIG_FILES, overrides={"train": {"window": "yesterday"}}, home=str(home))


# ----------------------------------------------------------------------- the split
def _sides(data) -> dict[int, str]:
    """row hash -> the split it sits in; fails if one row content sits on two sides."""
    from ratchet.data.rows import row_hashes

    sides: dict[int, str] = {}
    for name, part in (("train", data[0]), ("val", data[1]), ("test", data[2])):
        for h in row_hashes(part).tolist():
            assert sides.setdefault(h, name) == name, f"a row sits in {sides[h]} and {name}"
    return sides


def test_an_identical_row_never_sits_on_both_sides():
    from ratchet.training.window import split_frame

    a, b = generate_batch(0, 800, seed=5), generate_batch(1, 800, seed=5)
    repeated = pd.concat([a, b, a.sample(300, random_state=1), b.head(100)], ignore_index=True)
    _sides(split_frame(repeated, 0.15, 0.2, seed=1))  # the same row in two batches: one side


def test_rows_that_differ_only_by_an_ignored_id_sit_on_one_side():
    """The split follows features and label (``Schema.row_key``), not ids or timestamps."""
    from ratchet.data.rows import row_hashes
    from ratchet.training.window import split_frame

    a = generate_batch(0, 800, seed=5)
    twice = pd.concat([a, a], ignore_index=True)
    twice.insert(0, "row_id", [f"r{i:06d}" for i in range(len(twice))])  # every row's id differs
    schema = infer_schema(twice, DEMO_TARGET)
    assert "row_id" in {c.name for c in schema.ignored} and "row_id" not in schema.row_key
    parts = split_frame(twice, 0.15, 0.2, seed=1, key=schema.row_key)
    sides = _sides(tuple(p[schema.row_key] for p in parts))  # fails if a row sits on two sides
    assert set(sides.values()) == {"train", "val", "test"}
    # each copy sits beside its twin: the held-out rows are pairs of one content
    test_hashes = row_hashes(parts[2][schema.row_key])
    assert len(test_hashes) == 2 * len(set(test_hashes.tolist()))
    # hashing every column (the id included) splits the twins: what the key prevents
    with pytest.raises(AssertionError, match="sits in"):
        _sides(tuple(p[schema.row_key] for p in split_frame(twice, 0.15, 0.2, seed=1)))


def test_the_split_keeps_the_fractions_and_follows_the_seed():
    from ratchet.training.window import split_frame

    df = generate_batch(0, 4000, seed=5)
    train, val, test = split_frame(df, 0.15, 0.2, seed=1)
    assert len(train) + len(val) + len(test) == len(df)
    for part, frac in ((val, 0.15), (test, 0.2)):  # binomial: within 4 standard deviations
        assert abs(len(part) - frac * len(df)) < 4 * (len(df) * frac * (1 - frac)) ** 0.5
    other = _sides(split_frame(df, 0.15, 0.2, seed=2))
    assert other != _sides((train, val, test))


def test_adding_batches_moves_no_row_between_splits(home):
    """The gate's held-out rows of an older commit stay held out in every later window."""
    ctx = load_context(CONFIG_FILES, home=str(home))
    frames = [generate_batch(i, 600, seed=5) for i in range(3)]
    dump_schema(infer_schema(frames[0], DEMO_TARGET), ctx.settings.schema_path)
    (home / "incoming").mkdir(parents=True)
    first = publish_batches(ctx, frames[:2], home / "incoming")
    publish_batches(ctx, frames[2:], home / "more")
    cfg = load_context(CONFIG_FILES, overrides={"train": {"window": "all"}}, home=str(home)).cfg
    before = training_data(ctx.repo, first, cfg)
    after = training_data(ctx.repo, "main", cfg)
    assert len(after.batches) == 3 and len(before.batches) == 2
    old, new = _sides((before.train, before.val, before.test)), _sides((after.train, after.val, after.test))
    assert {h: new[h] for h in old} == old
    assert sum(s == "test" for s in old.values()) == len(before.test) > 0
