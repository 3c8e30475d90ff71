"""A regression target through the flows: train, gate, promote; an exact copy is kept."""

from __future__ import annotations

import mlflow
import numpy as np
from sklearn.datasets import load_diabetes

from ratchet.core.schema import dump_schema
from ratchet.data.schema_inference import infer_schema
from ratchet.runtime.context import load_context
from ratchet.runtime.options import RunOptions
from tests.conftest import CONFIG_FILES
from tests.training.helpers import publish_batches

TARGET = "target"
# a few dozen optimizer steps on 440 rows: small batches, a learning rate that moves
OVERRIDES = {
    "train": {"max_epochs": 10, "batch_size": 32},
    "tune": {"search_space": {
        "learning_rate": {"type": "float", "low": 0.005, "high": 0.01, "log": True},
        "batch_size": {"type": "categorical", "choices": [32]},
    }},
}


def test_diabetes_batches_train_promote_and_an_exact_copy_is_kept(home, tmp_path):
    from flows.promote import promote_flow
    from flows.train import train_flow

    df = load_diabetes(as_frame=True).frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    batches = np.array_split(df, 3)
    ctx = load_context(CONFIG_FILES, home=str(home))
    schema = infer_schema(batches[0], TARGET)
    assert schema.target.task == "regression"
    dump_schema(schema, ctx.settings.schema_path)
    publish_batches(ctx, batches, tmp_path / "incoming")
    options = RunOptions(config_files=CONFIG_FILES, home=str(home), overrides=OVERRIDES)

    first = train_flow(trials=1, options=options)
    m = first.metrics
    assert {"test_rmse", "test_mae", "test_r2"} <= set(m) and "test_accuracy" not in m
    assert all(np.isfinite(m[k]) for k in ("test_rmse", "test_mae", "test_r2"))
    tags = ctx.registry.version_info(first.model_version)["tags"]
    assert float(tags["test_rmse"]) == round(m["test_rmse"], 4)

    promoted = promote_flow(trigger="test", options=options)
    ev = promoted.evaluation.evidence.to_dict()
    assert promoted.outcome.action == "promote" and promoted.outcome.champion == first.model_version
    assert ev["task"] == "regression" and ev["champion"] is None and ev["challenger_scores"]["r2"] > 0
    assert 0.1 * len(df) < ev["test_rows"] < 0.3 * len(df)  # the held-out split of every batch

    # the registered pyfunc answers numbers
    mlflow.set_tracking_uri(ctx.settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{ctx.cfg.model_name}/{first.model_version}")
    out = model.predict(df.drop(columns=[TARGET]).head(5))
    assert list(out.columns) == ["prediction"] and out["prediction"].dtype == np.float64

    # the same data, config and code: the seeded study gives the same model again
    again = train_flow(trials=1, options=options)
    assert again.model_version != first.model_version
    kept = promote_flow(trigger="test", options=options)
    ev = kept.evaluation.evidence.to_dict()
    assert kept.evaluation.decision == "keep" and kept.outcome.action == "keep"
    assert ev["identical_predictions"] is True and ev["difference"] == 0 and ev["p_value"] == 1.0
    assert ctx.registry.alias("champion") == first.model_version

    # a clearly better challenger is promoted: force a weak champion (one epoch at a tiny
    # learning rate), then put the good model up against it
    from ratchet.promotion.promote import promote

    weak_overrides = {**OVERRIDES, "train": {**OVERRIDES["train"], "max_epochs": 1}, "tune": {"search_space": {
        "learning_rate": {"type": "float", "low": 0.0001, "high": 0.0002, "log": True},
        "batch_size": {"type": "categorical", "choices": [32]},
    }}}
    weak = train_flow(trials=1, options=RunOptions(config_files=CONFIG_FILES, home=str(home), overrides=weak_overrides))
    assert weak.metrics["test_rmse"] > 1.2 * m["test_rmse"], (weak.metrics, m)
    promote(ctx.registry, ctx.ledger, weak.model_version, trigger="test: force a weak champion")
    ctx.registry.set_alias("challenger", first.model_version)
    better = promote_flow(trigger="test", options=options)
    assert better.evaluation.decision == "promote" and better.outcome.action == "promote", better.evaluation.reasons
    assert ctx.registry.alias("champion") == first.model_version
