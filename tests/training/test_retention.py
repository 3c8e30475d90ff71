"""Retention of model versions (`ratchet gc`): real MLflow on SQLite, real artifacts and checkpoints.

Seven versions of one small fitted model, each logged in its own MLflow run with its own
checkpoint folder; v6 is registered from v3's model. Ledger: v1, v3, v4 were made champion
(v4 now, v3 previous), v2 was evaluated and kept out; v5 is the challenger; v7 the newest.
With ``keep_versions: 1`` only v2 loses its artifacts (v6's model is v3's: it stays loadable);
v1, a champion of the ledger only, keeps its model and loses its checkpoints.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from ratchet.promotion import promote as promotion
from ratchet.promotion.ledger import Entry
from ratchet.runtime.context import load_context
from ratchet.runtime.gc import run_gc
from ratchet.training import retention
from ratchet.training.lineage import lineage
from ratchet.training.model.fit import fit
from ratchet.training.window import split_frame
from tests.conftest import CONFIG_FILES
from tests.training.helpers import home_with_data

KEEP_ONE = {"retention": {"keep_versions": 1, "grace_minutes": 0}}


@pytest.fixture
def world(home):
    ctx = home_with_data(home, CONFIG_FILES, batches=2, rows=300)
    main = ctx.repo.resolve("main")
    frame = ctx.repo.read_dataframe("main", ctx.repo.list_objects("main", ctx.cfg.data.batch_prefix)[0])
    train, val, _ = split_frame(frame, 0.2, 0.1, seed=1)
    first = ctx.settings.checkpoints_dir / "study-1" / "0"
    predictor = fit(train, val, ctx.schema, ctx.cfg.train.model_copy(update={"max_epochs": 1}),
                    progress=False, checkpoint_dir=first).predictor
    example = train[ctx.schema.feature_names]
    ctx.registry.activate()
    for i in range(1, 8):
        study = f"study-{i}"
        if i > 1:
            shutil.copytree(first.parent, ctx.settings.checkpoints_dir / study)
        if i == 6:
            uri = ctx.registry.version_info("3")["source"]
        else:
            with mlflow.start_run():
                uri = ctx.registry.log_predictor(predictor, example)
        assert ctx.registry.register(uri, {"data_commit": main, "optuna_study": study}) == str(i)
    for v in ("1", "3", "4"):
        promotion.promote(ctx.registry, ctx.ledger, v, trigger="test", data_commit=main)
    ctx.ledger.append(Entry(action="keep", trigger="test", model=ctx.cfg.model_name, from_version="1",
                            to_version="2", data_commit=main))
    ctx.registry.set_alias("challenger", "5")
    return ctx


def _artifacts(ctx, version: str) -> int:
    uri = ctx.registry.client.get_model_version_download_uri(ctx.cfg.model_name, version)
    return retention.artifact_bytes(uri)


def _cli_gc(home, overrides: dict) -> dict:
    """``ratchet gc --json`` in its own process, the overrides in a config file."""
    extra = home.parent / "retention.yaml"
    extra.write_text(json.dumps(overrides))
    env = {**os.environ, "RATCHET_HOME": str(home), "RATCHET_CONFIG": os.pathsep.join([*CONFIG_FILES, str(extra)])}
    r = subprocess.run([str(Path(sys.executable).parent / "ratchet"), "gc", "--json"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


@pytest.mark.slow  # a fit, seven logged models and a CLI process: about 50 s on a loaded 2-core machine
def test_only_versions_nothing_keeps_lose_artifacts_and_checkpoints(world):
    ctx = world
    home = str(ctx.settings.root)
    assert ctx.registry.aliases() == {"champion": "4", "challenger": "5", "previous": "3"}
    sizes = {str(v): _artifacts(ctx, str(v)) for v in range(1, 8)}
    assert all(sizes.values())

    every = load_context(CONFIG_FILES, {"retention": {**KEEP_ONE["retention"], "keep_ledger_versions": "all"}},
                         home=home)
    assert run_gc(every, dry_run=True).to_dict()["parts"]["versions"]["items"] == []  # v2 is named by the ledger
    ctx1 = load_context(CONFIG_FILES, KEEP_ONE, home=home)
    dry = run_gc(ctx1, dry_run=True).to_dict()["parts"]["versions"]
    assert dry["items"] == ["2"] and dry["bytes"] >= sizes["2"] > 0
    assert _artifacts(ctx, "2") == sizes["2"] and (ctx.settings.checkpoints_dir / "study-2").is_dir()

    out = _cli_gc(ctx.settings.root, KEEP_ONE)["parts"]["versions"]
    assert out["items"] == ["2"] and out["bytes"] == dry["bytes"]
    assert out["kept"] == {"v7": "among the newest 1", "v6": "its model is a kept version's", "v5": "alias challenger",
                           "v4": "alias champion", "v3": "alias previous", "v1": "a champion in the ledger"}
    info = ctx.registry.version_info("2")
    assert info["tags"]["gc"] == "artifacts_removed" and _artifacts(ctx, "2") == 0
    assert lineage(ctx.repo, ctx.registry, "2")["data_commit"] == info["tags"]["data_commit"]  # the row stays
    studies = {p.name for p in ctx.settings.checkpoints_dir.iterdir()}
    assert studies == {"study-3", "study-4", "study-5", "study-7"}
    assert out["counts"]["checkpoints"] == 2  # v6's and the ledger champion v1's
    rows = ctx.repo.read_dataframe("main", ctx.repo.list_objects("main", ctx.cfg.data.batch_prefix)[0]).head(20)
    assert len(ctx.registry.load_predictor("champion").predict(rows)) == 20  # the champion still serves
    for v in ("1", "3", "5", "6", "7"):
        assert ctx.registry.load_predictor(v).version == v
        assert "gc" not in ctx.registry.version_info(v)["tags"]
    with pytest.raises(promotion.PromotionError, match="no model any more"):
        promotion.rollback(ctx.registry, ctx.ledger, "2", trigger="test")
    assert ctx.registry.alias("champion") == "4"
    assert run_gc(ctx1).to_dict()["bytes_freed"] == 0
