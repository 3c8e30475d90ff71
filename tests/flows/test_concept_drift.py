"""Pure concept drift (the labelling rule changes, the features do not): ingest scores each
labelled batch with the champion, finds the onset, and the window and the gate start there."""

from __future__ import annotations

import pytest

from benchmarks.drift_recovery import TARGET, accuracy, holdout, stream
from tests.conftest import CONFIG_FILES
from tests.events import recorded_events


@pytest.mark.slow
def test_a_challenger_trained_after_the_onset_replaces_the_stale_champion(home, tmp_path):
    from flows.ingest import ingest_flow
    from flows.promote import promote_flow
    from flows.train import train_flow
    from ratchet.core.schema import dump_schema
    from ratchet.data.schema_inference import infer_schema
    from ratchet.runtime.options import RunOptions

    options = RunOptions(config_files=CONFIG_FILES, home=str(home))
    ctx = options.context()
    frames = stream("concept", 9, 400, 6, seed=3)
    dump_schema(infer_schema(frames[0], TARGET), ctx.settings.schema_path)
    results = []
    for i, df in enumerate(frames):
        path = tmp_path / f"batch-{i}.csv"
        df.to_csv(path, index=False)
        results.append(ingest_flow(str(path), options=options))
        if i == 5:  # six old-rule batches: the first champion
            train_flow(trigger="test", options=options)
            assert promote_flow(trigger="test", options=options).outcome.action == "promote"
    stale = ctx.registry.alias("champion")
    verdicts = [r.report["concept"] for r in results[6:]]
    assert all(v["detected"] for v in verdicts), verdicts
    onset = results[6].report["batch_id"]
    assert {v["onset"] for v in verdicts} == {onset}
    assert all(r.report["drift"] is None or not r.report["drift"]["detected"] for r in results[6:])  # no profile saw it
    events = recorded_events("ratchet.drift.detected", lambda e: e["payload"].get("kind") == "concept")
    assert events and events[-1]["payload"]["onset"] == onset

    trained = train_flow(trigger="test", options=options)
    tags = ctx.registry.version_info(trained.model_version)["tags"]
    assert tags["window_batches"] == "3" and "(batch scores)" in tags["window_rule"]
    promoted = promote_flow(trigger="test", options=options)
    assert promoted.outcome.action == "promote" and promoted.outcome.previous == stale

    fresh = holdout("concept", 2000, seed=3)
    ours = accuracy(ctx.registry.load_predictor("champion"), fresh)
    post_only = train_flow(window_batches=3, trigger="test: post-change only", options=options)
    reference = accuracy(ctx.registry.load_predictor(post_only.model_version), fresh)
    assert ours >= reference - 0.03, (ours, reference)
    assert accuracy(ctx.registry.load_predictor(stale), fresh) < ours - 0.1
