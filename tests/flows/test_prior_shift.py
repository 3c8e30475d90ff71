"""Prior shift through the flows: a labelled batch whose base rate moved re-weights the champion's
probabilities to its class shares (marked on its version, applied by every load), and a batch
back at the old base rate clears the mark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.drift_recovery import TARGET, stagger_frame
from tests.conftest import CONFIG_FILES


def _with_positive_share(seed: int, share: float, rows: int = 400):
    """Label shift proper: rows of one joint distribution (STAGGER's rule, a quarter of the labels
    flipped, so the champion is unsure where the rule is and re-weighting can help) drawn with a
    chosen share of each label, so P(x | y) stays and P(y) moves."""
    df = stagger_frame(rows * 3, seed)
    flip = np.random.default_rng(seed).random(len(df)) < 0.25
    df[TARGET] = np.where(flip, 1 - df[TARGET], df[TARGET])
    pos, neg = df[df[TARGET] == 1], df[df[TARGET] == 0]
    k = int(rows * share)
    both = pd.concat([pos.head(k), neg.head(rows - k)], ignore_index=True)
    return both.sample(frac=1, random_state=seed).reset_index(drop=True)


@pytest.mark.slow
def test_a_moved_base_rate_reweights_the_champion_and_a_return_clears_it(home, tmp_path):
    from flows.ingest import ingest_flow
    from flows.promote import promote_flow
    from flows.train import train_flow
    from ratchet.core.schema import dump_schema
    from ratchet.data.schema_inference import infer_schema
    from ratchet.runtime.options import RunOptions

    options = RunOptions(config_files=CONFIG_FILES, home=str(home), overrides={"drift": {"prior_correction": True}})
    ctx = options.context()
    before = [_with_positive_share(i, 0.5) for i in range(2)]
    dump_schema(infer_schema(before[0], TARGET), ctx.settings.schema_path)

    def ingest(i, df):
        path = tmp_path / f"batch-{i}.csv"
        df.to_csv(path, index=False)
        return ingest_flow(str(path), options=options)

    for i, df in enumerate(before):
        ingest(i, df)
    train_flow(trigger="test", options=options)
    assert promote_flow(trigger="test", options=options).outcome.action == "promote"
    champion = ctx.registry.alias("champion")
    counts = ctx.registry.lineage(champion).class_counts
    assert set(counts) == {"0", "1"} and abs(counts["1"] / sum(counts.values()) - 0.5) < 0.1
    raw = ctx.registry.load_predictor("champion")
    assert raw.prior_weights is None

    shifted = _with_positive_share(10, 0.9)
    ingest(2, shifted)
    marks = ctx.registry.marks(champion)
    assert marks.prior_batch and marks.prior_shares not in (None, "{}")
    adjusted = ctx.registry.load_predictor("champion")
    assert adjusted.prior_weights is not None and adjusted.prior_weights[1] > 1.5 > 0.5 > adjusted.prior_weights[0]
    probe = _with_positive_share(20, 0.5).drop(columns=[TARGET])
    positive = list(raw.classes).index(1) if 1 in raw.classes else list(map(str, raw.classes)).index("1")
    assert adjusted.predict_proba(probe)[:, positive].mean() > raw.predict_proba(probe)[:, positive].mean() + 0.01
    np.testing.assert_allclose(adjusted.predict_proba(probe).sum(axis=1), 1.0, rtol=1e-5)
    from ratchet.serving.fastpath import compile_fast_path

    fast = compile_fast_path(adjusted)  # the server's compiled path applies the weights too
    assert fast is not None
    columns = {c: probe[c].tolist() for c in probe.columns}
    np.testing.assert_allclose(fast.predict_proba(columns, len(probe)), adjusted.predict_proba(probe), atol=1e-4)
    if fast.rows is not None:
        one = {c: v[:1] for c, v in columns.items()}
        np.testing.assert_allclose(fast.rows([one]), adjusted.predict_proba(probe.head(1)), atol=1e-4)

    ingest(3, _with_positive_share(30, 0.5))  # back at the base rate it was trained at
    assert ctx.registry.marks(champion).prior_shares == "{}"
    assert ctx.registry.load_predictor("champion").prior_weights is None

    # as shipped (drift.prior_correction off) a shift is only reported (the ingest's output): nothing marked
    shipped = RunOptions(config_files=CONFIG_FILES, home=str(home))
    path = tmp_path / "batch-4.csv"
    _with_positive_share(40, 0.9).to_csv(path, index=False)
    ingest_flow(str(path), options=shipped)
    assert ctx.registry.marks(champion).prior_shares == "{}"
