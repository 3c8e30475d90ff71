"""The gate on real registered models (real MLflow on SQLite in a temporary folder)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import mlflow
import pytest
import sqlalchemy

from ratchet.core.schema import dump_schema
from ratchet.data import ingest
from ratchet.data.schema_inference import infer_schema
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch, write_batch
from ratchet.promotion import promote as promotion
from ratchet.promotion.ledger import Entry, Ledger
from ratchet.runtime.context import load_context
from ratchet.training.search import register_trained, tune_on_commit
from ratchet.training.window import training_data
from tests.conftest import CONFIG_FILES


def publish(ctx, df, folder: Path, name: str) -> str:
    path = write_batch(df, folder / f"{name}.csv")
    audited = ingest.audit_batch(path, ctx.schema)
    assert audited.ok, audited.violations
    branch = ingest.stage_batch(ctx.repo, audited, path, ctx.cfg.data)
    ingest.commit_batch(ctx.repo, branch, audited)
    return ingest.publish_batch(ctx.repo, branch, audited, ctx.cfg.data)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """v1 good model; v2 an exact copy of v1; v3 a model of the wrong rule tagged with v1's data."""
    home = tmp_path_factory.mktemp("home")
    ctx = load_context(CONFIG_FILES, home=str(home))
    clean = [generate_batch(i, 900, seed=5) for i in range(2)]
    drifted = [generate_batch(i, 900, seed=5, concept_drift_at=0) for i in (10, 11)]
    dump_schema(infer_schema(clean[0], DEMO_TARGET), ctx.settings.schema_path)
    for i, df in enumerate(clean):
        clean_commit = publish(ctx, df, home, f"clean{i}")
    good = tune_on_commit(training_data(ctx.repo, clean_commit, ctx.cfg, schema=ctx.schema), ctx.schema, ctx.cfg, ctx.settings,
                          ctx.registry, trials=1, progress=False)
    for i, df in enumerate(drifted):
        publish(ctx, df, home, f"drift{i}")
    bad = tune_on_commit(training_data(ctx.repo, "main", ctx.cfg, 2, schema=ctx.schema), ctx.schema, ctx.cfg, ctx.settings,
                         ctx.registry, trials=1, progress=False)
    example = clean[0].drop(columns=[DEMO_TARGET])
    v1 = register_trained(good, ctx.registry, example)
    info = ctx.registry.version_info(v1)
    v2 = ctx.registry.register(info["source"], {**info["tags"], "run_id": "copy-of-v1"})
    v3 = register_trained(dataclasses.replace(bad, data_commit=clean_commit, window_batches=2), ctx.registry, example)
    return ctx, v1, v2, v3


def test_registration_is_idempotent_and_tagged(world):
    ctx, v1, _, _ = world
    tags = ctx.registry.version_info(v1)["tags"]
    assert {"data_commit", "code_version", "config_hash", "optuna_study", "optuna_trial"} <= set(tags)
    assert ctx.registry.find_version(run_id=tags["run_id"]) == v1


def test_first_model_is_promoted_over_the_floor(world):
    ctx, v1, _, _ = world
    ctx.registry.set_alias("challenger", v1)
    result = promotion.evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, ctx.cfg)
    assert result.decision == "promote" and result.champion is None
    moved = promotion.promote(ctx.registry, ctx.ledger, v1, trigger="test", evidence=result.evidence)
    assert moved.champion == v1 and ctx.registry.alias("challenger") is None


def test_exact_copy_is_never_promoted(world):
    ctx, v1, v2, _ = world
    ctx.registry.set_alias("challenger", v2)
    result = promotion.evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, ctx.cfg)
    assert result.decision == "keep"
    assert result.evidence.difference == 0


def test_clearly_worse_is_not_promoted(world):
    ctx, v1, _, v3 = world
    ctx.registry.set_alias("challenger", v3)
    result = promotion.evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, ctx.cfg)
    assert result.decision == "keep"
    assert result.evidence.challenger < result.evidence.champion - 0.2


def test_clearly_better_is_promoted_and_rollback_restores(world):
    ctx, v1, _, v3 = world
    promotion.promote(ctx.registry, ctx.ledger, v3, trigger="test: force a bad champion")
    ctx.registry.set_alias("challenger", v1)
    result = promotion.evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, ctx.cfg)
    assert result.decision == "promote"
    assert result.evidence.p_value < 0.001
    promotion.promote(ctx.registry, ctx.ledger, v1, trigger="test", evidence=result.evidence)
    assert ctx.registry.aliases() == {"champion": v1, "challenger": None, "previous": v3}

    back = promotion.rollback(ctx.registry, ctx.ledger)
    assert back.champion == v3 and ctx.registry.alias("previous") == v1
    actions = [(e.action, e.from_version, e.to_version) for e in ctx.ledger.history()]
    assert actions[-1] == ("rollback", v1, v3)
    with pytest.raises(promotion.PromotionError, match="already the champion"):
        promotion.rollback(ctx.registry, ctx.ledger, to=v3)


def test_pyfunc_predicts_raw_rows(world):
    ctx, v1, _, _ = world
    model = mlflow.pyfunc.load_model(f"models:/{ctx.cfg.model_name}/{v1}")
    rows = generate_batch(0, 5, seed=99).drop(columns=[DEMO_TARGET])
    out = model.predict(rows)
    assert list(out.columns) == ["prediction", "proba_0", "proba_1"]
    assert len(out) == 5


def _arrange(ctx, champion, previous, challenger):
    ctx.registry.set_alias("champion", champion)
    ctx.registry.set_alias("previous", previous)
    ctx.registry.set_alias("challenger", challenger)


@pytest.mark.parametrize("step", ["previous", "challenger", "champion", "ledger"])
def test_failure_at_any_step_leaves_exactly_the_old_champion(world, step, tmp_path):
    ctx, v1, v2, v3 = world
    _arrange(ctx, champion=v1, previous=v3, challenger=v2)
    before, entries = ctx.registry.aliases(), len(ctx.ledger.history())
    ledger = ctx.ledger
    if step == "ledger":  # a real failure of the commit point: the ledger's folder does not exist
        ledger = Ledger(f"sqlite:///{tmp_path}/no/such/folder/ledger.db")

    def inject(name: str) -> None:
        if name == step:
            raise RuntimeError(f"injected failure after moving {name}")

    with pytest.raises((RuntimeError, sqlalchemy.exc.OperationalError)):
        promotion.promote(ctx.registry, ledger, v2, trigger="test", on_step=inject)
    assert ctx.registry.aliases() == before
    assert len(ctx.ledger.history()) == entries

    # the same promotion without a failure goes through
    promotion.promote(ctx.registry, ctx.ledger, v2, trigger="test")
    assert ctx.registry.aliases() == {"champion": v2, "previous": v1, "challenger": None}


@pytest.mark.parametrize("step", ["previous", "champion"])
def test_failure_during_rollback_leaves_the_current_champion(world, step):
    ctx, v1, v2, v3 = world
    _arrange(ctx, champion=v1, previous=v3, challenger=v2)
    before = ctx.registry.aliases()

    def inject(name: str) -> None:
        if name == step:
            raise RuntimeError("injected")

    with pytest.raises(RuntimeError):
        promotion.rollback(ctx.registry, ctx.ledger, on_step=inject)
    assert ctx.registry.aliases() == before


def test_concurrent_move_is_refused(world):
    ctx, v1, v2, v3 = world
    _arrange(ctx, champion=v1, previous=v3, challenger=v2)
    entry = Entry(action="promote", trigger="stale", model=ctx.cfg.model_name, to_version=v2)
    with pytest.raises(promotion.PromotionError, match="meanwhile"):
        promotion._move_aliases(ctx.registry, ctx.ledger, {"champion": v2}, entry, expect_champion=v3)
    assert ctx.registry.alias("champion") == v1


def test_running_service_picks_up_a_rollback(world, tmp_path):
    from fastapi.testclient import TestClient

    from ratchet.serving.app import create_app
    from ratchet.training.registry import RegistryProvider

    ctx, v1, v2, v3 = world
    _arrange(ctx, champion=v2, previous=v1, challenger=v3)
    ctx.registry.delete_alias("challenger")
    app = create_app(RegistryProvider(ctx.registry), ctx.cfg.serving, tmp_path / "serving", watch_interval_s=0.2)
    row = generate_batch(0, 1, seed=1).drop(columns=[DEMO_TARGET]).to_dict(orient="records")[0]
    with TestClient(app) as client:
        assert client.post("/predict", json={"row": row}).json()["model_version"] == v2
        promotion.rollback(ctx.registry, ctx.ledger, trigger="test")
        deadline = time.monotonic() + 20
        seen = v2
        while seen != v1 and time.monotonic() < deadline:
            r = client.post("/predict", json={"row": row})
            assert r.status_code == 200
            seen = r.json()["model_version"]
            time.sleep(0.1)
    assert seen == v1


def restore_aliases(registry, before: dict) -> None:
    """The aliases as ``registry.aliases()`` gave them (a test that moved them on a shared world)."""
    for alias, version in before.items():
        if version is None:
            registry.delete_alias(alias)
        else:
            registry.set_alias(alias, version)


@pytest.fixture(scope="module")
def recipe_world(tmp_path_factory):
    """v1 trained on two clean batches (the champion); after a concept drift, v2 trained at the first
    drifted batch (the newest one), v3 at the second: v3 the challenger, v2 its predecessor."""
    home = tmp_path_factory.mktemp("recipe")
    ctx = load_context(CONFIG_FILES, home=str(home))
    clean = [generate_batch(i, 600, seed=7) for i in range(2)]
    drifted = [generate_batch(i, 600, seed=7, concept_drift_at=0) for i in (10, 11)]
    dump_schema(infer_schema(clean[0], DEMO_TARGET), ctx.settings.schema_path)
    example = clean[0].drop(columns=[DEMO_TARGET])

    def train(window: int | None) -> str:
        trained = tune_on_commit(training_data(ctx.repo, "main", ctx.cfg, window, schema=ctx.schema), ctx.schema,
                                 ctx.cfg, ctx.settings, ctx.registry, trials=1, progress=False)
        return register_trained(trained, ctx.registry, example)

    for i, df in enumerate(clean):
        publish(ctx, df, home, f"clean{i}")
    v1 = train(None)
    paths = []
    versions = []
    for i, df in enumerate(drifted):
        publish(ctx, df, home, f"drift{i}")
        paths.append(ctx.repo.list_objects("main", ctx.cfg.data.batch_prefix))
        versions.append(train(1))
    ctx.registry.set_alias("champion", v1)
    ctx.registry.set_alias("challenger", versions[-1])
    newest = [p for p in paths[-1] if p.endswith(".parquet")][-1]
    return ctx, v1, versions[0], versions[1], newest


def test_the_gate_pools_the_rows_the_champion_never_saw_scored_by_the_predecessor(recipe_world):
    ctx, v1, v2, v3, newest = recipe_world
    result = promotion.evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, ctx.cfg)
    ev = result.evidence
    # the first drifted batch has no predecessor (the model trained just before it is the champion);
    # the second one's rows outside the held-out split are scored by v2, which never saw them
    [part] = ev.model_extra["out_of_time"]
    assert part["batch"] == newest and part["version"] == v2
    assert 400 < part["rows"] < 600 and ev.model_extra["out_of_time_rows"] == part["rows"]
    assert ev.n == ev.test_rows < 200  # the floor and the effect: the challenger's own held-out rows
    assert result.decision == "promote" and result.challenger == v3


def test_without_out_of_time_batches_the_gate_scores_the_own_rows_alone(recipe_world):
    ctx, *_ = recipe_world
    cfg = ctx.cfg.model_copy(update={"gate": ctx.cfg.gate.model_copy(update={"out_of_time_batches": 0})})
    ev = promotion.evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, cfg).evidence
    assert "out_of_time" not in ev.model_extra and "out_of_time_rows" not in ev.model_extra


def test_a_champion_that_was_the_last_challenger_pairs_with_the_model_it_replaced(recipe_world):
    # v2 (trained at the first drifted batch) was promoted over v1: the second drifted batch, which
    # neither saw, has no predecessor but the champion itself, so its rows pair v2 with v1 (alias
    # previous): last round's "retrain on the newest data" against "keep", out of time for both
    ctx, v1, v2, v3, newest = recipe_world
    before = ctx.registry.aliases()
    try:
        ctx.registry.set_alias("previous", v1)
        ctx.registry.set_alias("champion", v2)
        ev = promotion.evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, ctx.cfg).evidence
        [part] = ev.model_extra["out_of_time"]
        assert part["batch"] == newest and part["version"] == v2 and part["against"] == v1
        assert 400 < part["rows"] < 600 and ev.model_extra["out_of_time_rows"] == part["rows"]
        # v1 learnt the old concept: v2 right on far more of those rows than v1, so the pooled test passes
        assert ev.p_value < ctx.cfg.gate.alpha and ev.n == ev.test_rows < 200
        ctx.registry.delete_alias("previous")  # without the model it replaced: nothing to pair
        ev = promotion.evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, ctx.cfg).evidence
        assert "out_of_time" not in ev.model_extra
    finally:
        restore_aliases(ctx.registry, before)


def test_the_gate_reads_the_concept_alarm_raised_at_ingest_against_its_champion(tmp_path):
    """A batch's commit metadata holds the champion's concept check (ingest); the gate finds the
    newest alarm against the champion it judges, and none against another version."""
    from ratchet.monitoring.concept import ConceptCheck

    ctx = load_context(CONFIG_FILES, home=str(tmp_path / "home"))
    df = generate_batch(0, 300, seed=5)
    dump_schema(infer_schema(df, DEMO_TARGET), ctx.settings.schema_path)

    def publish_checked(frame, name: str, check: ConceptCheck | None) -> str:
        path = write_batch(frame, tmp_path / f"{name}.csv")
        audited = ingest.audit_batch(path, ctx.schema)
        if check is not None:
            audited = dataclasses.replace(audited, metadata=check.metadata())
        branch = ingest.stage_batch(ctx.repo, audited, path, ctx.cfg.data)
        ingest.commit_batch(ctx.repo, branch, audited)
        return ingest.publish_batch(ctx.repo, branch, audited, ctx.cfg.data)

    check = dict(label="b", rows=300, error=0.4, baseline_error=0.15, p_value=1e-6, alpha=0.008, index=1)
    publish_checked(df, "b0", None)
    quiet = publish_checked(generate_batch(1, 300, seed=5), "b1",
                            ConceptCheck(champion="1", detected=False, **{**check, "p_value": 0.4}))
    assert promotion._drift_alarm(ctx.repo, quiet, "1") is None  # checked, nothing found
    alarmed = publish_checked(generate_batch(2, 300, seed=5), "b2", ConceptCheck(champion="1", detected=True, **check))
    said = promotion._drift_alarm(ctx.repo, alarmed, "1")
    assert said is not None and "version 1 scored 0.6 on batch b against an error of 0.15 held out" in said
    assert promotion._drift_alarm(ctx.repo, alarmed, "2") is None  # raised against another champion


def test_evaluate_challenger_reads_the_concept_alarm_only_for_a_drifted_champion_rule(recipe_world, monkeypatch):
    """The wiring of ``gate.drifted_champion`` through ``evaluate_challenger``: as shipped (``better``)
    the alarm is not even looked up; with ``not_worse`` it is looked up for the champion, recorded in
    the evidence, and weighed by the not-worse test (the rule's branches, each forced:
    ``tests/promotion/test_gate.py``)."""
    ctx, v1, v2, v3, _newest = recipe_world
    before = ctx.registry.aliases()
    asked = []

    def alarm(repo, commit, champion):
        asked.append(champion)
        return f"version {champion} scored 0.4 on batch drift1 against an error of 0.1 held out (p=1e-06 <= 0.008)"

    monkeypatch.setattr(promotion, "_drift_alarm", alarm)
    no_pool = {"out_of_time_batches": 0}
    try:
        ctx.registry.set_alias("champion", v2)
        strict = ctx.cfg.model_copy(update={"gate": ctx.cfg.gate.model_copy(update=no_pool)})
        kept = promotion.evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, strict)
        assert kept.decision == "keep" and asked == [], kept.reasons
        assert kept.evidence.model_extra.get("drifted_champion") is None
        flip = ctx.cfg.model_copy(update={"gate": ctx.cfg.gate.model_copy(update={**no_pool, "drifted_champion": "not_worse"})})
        judged = promotion.evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, flip)
        assert asked == [v2]
        # the not-worse test decides, whichever way these two trainings fall (here: v3 significantly worse, kept)
        said = judged.reasons[0]
        assert ("even against a drifted champion" in said) == (judged.decision == "keep"), judged.reasons
        assert judged.decision == "keep" or f"enough against a drifted champion: version {v2}" in said, said
        assert judged.evidence.drifted_champion.startswith(f"version {v2} scored 0.4")
    finally:
        restore_aliases(ctx.registry, before)
