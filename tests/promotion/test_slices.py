"""Sliced evaluation: better on average is not enough when one group of rows gets worse."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, wilcoxon
from statsmodels.stats.multitest import multipletests

from ratchet.core.config import GateConfig
from ratchet.promotion.gate import decide
from ratchet.promotion.slices import absolute_error, check_slices, score_slices, with_slices, zero_one_loss


def _wrong(sizes: dict[str, int], error_rates: dict[str, float], seed: int) -> np.ndarray:
    """Per row of the groups in ``sizes`` (in order), True on exactly round(rate * size) rows."""
    rng = np.random.default_rng(seed)
    parts = []
    for g, n in sizes.items():
        w = np.zeros(n, dtype=bool)
        w[rng.choice(n, int(round(error_rates[g] * n)), replace=False)] = True
        parts.append(w)
    return np.concatenate(parts)


def _proba(y: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    return np.eye(2)[np.where(wrong, 1 - y, y)] * 0.8 + 0.1


def _world(sizes: dict[str, int], champion: dict[str, float], challenger: dict[str, float]):
    frame = pd.DataFrame({"g": np.repeat(list(sizes), list(sizes.values()))})
    frame["x"] = np.random.default_rng(7).normal(size=len(frame))
    y = np.random.default_rng(8).integers(0, 2, len(frame))
    return frame, y, _proba(y, _wrong(sizes, champion, 1)), _proba(y, _wrong(sizes, challenger, 2))


def _gate(frame, y, champ, chal, **cfg):
    cfg = GateConfig(**{"slices": ["g"], "slice_min_rows": 30, **cfg})
    plain = decide(y, champ, chal, [0, 1], cfg)
    check = check_slices(frame, zero_one_loss(y, champ), zero_one_loss(y, chal), cfg)
    return plain, with_slices(plain, check)


def test_better_on_average_but_worse_on_one_group_is_kept_naming_the_group():
    sizes = {"a": 400, "b": 400, "c": 150}
    frame, y, champ, chal = _world(sizes, {"a": 0.2, "b": 0.2, "c": 0.2}, {"a": 0.05, "b": 0.05, "c": 0.5})
    plain, sliced = _gate(frame, y, champ, chal)
    assert plain.decision == "promote"  # the average alone would promote it
    assert sliced.decision == "keep"
    assert sliced.reasons[0].startswith("challenger significantly worse on slice g=c (150 rows)")
    ev = sliced.evidence.slices
    assert ev["worse"] == ["g=c"] and sliced.evidence.checks["slices"] is False
    c = next(s for s in ev["tested"] if s["slice"] == "g=c")
    assert c["rows"] == 150 and c["champion"] == pytest.approx(0.2) and c["challenger"] == pytest.approx(0.5)
    assert c["difference"] == pytest.approx(0.3) and c["p_adjusted"] <= 0.05
    # the main gate's own evidence is all still there
    assert {k: sliced.evidence.to_dict()[k] for k in plain.evidence.to_dict() if k != "checks"} == {
        k: v for k, v in plain.evidence.to_dict().items() if k != "checks"}


def test_not_worse_on_any_slice_is_promoted_as_before():
    sizes = {"a": 300, "b": 300, "c": 300}
    frame, y, champ, chal = _world(sizes, dict.fromkeys(sizes, 0.2), dict.fromkeys(sizes, 0.1))
    plain, sliced = _gate(frame, y, champ, chal, slices=["g", "x"])
    assert plain.decision == sliced.decision == "promote"
    assert sliced.reasons[: len(plain.reasons)] == plain.reasons
    assert sliced.reasons[-1].startswith("no slice significantly worse (7 tested")
    ev = sliced.evidence.slices
    assert ev["worse"] == [] and sliced.evidence.checks["slices"] is True
    assert [s["slice"] for s in ev["tested"]][:3] == ["g=a", "g=b", "g=c"]
    bins = [s for s in ev["tested"] if s["column"] == "x"]  # a numeric column: 4 quantile bins
    assert len(bins) == 4 and all(s["slice"].startswith("x in (") for s in bins)
    assert sum(s["rows"] for s in bins) == len(frame) and min(s["rows"] for s in bins) >= 224


def test_slices_under_min_rows_are_skipped_and_listed():
    sizes = {"a": 400, "b": 400, "tiny": 20}
    frame, y, champ, chal = _world(sizes, {"a": 0.2, "b": 0.2, "tiny": 0.0}, {"a": 0.05, "b": 0.05, "tiny": 1.0})
    _, sliced = _gate(frame, y, champ, chal)
    ev = sliced.evidence.slices
    assert ev["skipped"] == [{"column": "g", "slice": "g=tiny", "rows": 20}]
    assert [s["slice"] for s in ev["tested"]] == ["g=a", "g=b"]
    assert sliced.decision == "promote" and "1 skipped under 30 rows" in sliced.reasons[-1]
    _, strict = _gate(frame, y, champ, chal, slice_min_rows=20)  # now it is tested, and fails
    assert strict.decision == "keep" and strict.evidence.slices["worse"] == ["g=tiny"]


def test_holm_adjusts_the_family_of_slices():
    """One slice is worse at p≈0.02 alone; among five slices Holm's correction says chance."""
    y = np.zeros(500, dtype=int)
    champ_wrong = np.zeros(500, dtype=bool)
    chal_wrong = np.zeros(500, dtype=bool)
    chal_wrong[:10] = True  # slice 0: 10 rows only the challenger gets wrong ...
    champ_wrong[10:12] = True  # ... and 2 only the champion: binomtest(10, 12) ≈ 0.019
    champ_wrong[100:103] = chal_wrong[103:105] = True  # slice 1: a small, even mix
    frame = pd.DataFrame({"g": np.repeat([f"s{i}" for i in range(5)], 100)})
    cfg = GateConfig(slices=["g"], slice_min_rows=30)
    check = check_slices(frame, champ_wrong.astype(float), chal_wrong.astype(float), cfg)

    raw = [binomtest(10, 12, 0.5, alternative="greater").pvalue,
           binomtest(2, 5, 0.5, alternative="greater").pvalue, 1.0, 1.0, 1.0]
    assert [s["p_value"] for s in check.tested] == pytest.approx(raw)
    reject, adjusted, _, _ = multipletests(raw, alpha=0.05, method="holm")
    assert [s["p_adjusted"] for s in check.tested] == pytest.approx(list(adjusted))
    assert [s["worse"] for s in check.tested] == list(reject) == [False] * 5
    assert raw[0] < 0.05 < check.tested[0]["p_adjusted"]
    alone = check_slices(frame.iloc[:100], champ_wrong[:100], chal_wrong[:100], cfg)
    assert alone.worse and alone.tested[0]["p_adjusted"] == pytest.approx(raw[0])
    gated = with_slices(decide(y, _proba(y, champ_wrong), _proba(y, chal_wrong), [0, 1], cfg), check)
    assert gated.evidence.slices["correction"] == "holm" and gated.evidence.slices["worse"] == []


def test_regression_losses_use_wilcoxon_on_the_same_rows():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"size": rng.uniform(0, 100, 800)})
    y = rng.normal(size=800)
    champ = y + rng.normal(scale=1.0, size=800)
    chal = y + rng.normal(scale=0.7, size=800)
    big = frame["size"].to_numpy() > 75
    chal[big] = y[big] + rng.normal(scale=2.0, size=big.sum())  # worse on the largest quarter
    cfg = GateConfig(slices=["size"], slice_min_rows=30)
    lc, lh = absolute_error(y, champ), absolute_error(y, chal)
    check = check_slices(frame, lc, lh, cfg, test="wilcoxon")
    assert check.test == "wilcoxon_signed_rank_one_sided" and check.metric == "mean_loss"
    assert len(check.worse) == 1 and check.worse[0]["slice"].startswith("size in (")
    last = check.tested[-1]
    mask = frame["size"].to_numpy() > float(last["slice"].split("(")[1].split(",")[0])
    assert last["worse"] and last["p_value"] == pytest.approx(
        wilcoxon(lh[mask] - lc[mask], alternative="greater").pvalue)
    assert last["challenger"] == pytest.approx(lh[mask].mean())
    # what evaluate_challenger calls for a regression target: the same check from the predictions
    assert score_slices(frame, y, champ, chal, cfg, regression=True).tested == check.tested


def test_an_unknown_slice_column_is_named():
    frame, y, champ, chal = _world({"a": 50}, {"a": 0.2}, {"a": 0.1})
    with pytest.raises(ValueError, match="'nope'"):
        _gate(frame, y, champ, chal, slices=["nope"])


# ------------------------------------------------------------------ through evaluate_challenger
def _errs_at_age_multiple_of_5(df: pd.DataFrame) -> np.ndarray:
    return (df["age"] % 5 == 0).to_numpy()


def _errs_on_half_the_owners(df: pd.DataFrame) -> np.ndarray:
    return ((df["home_ownership"] == "own") & (df["age"] % 2 == 0)).to_numpy()


RULES = {"age5": _errs_at_age_multiple_of_5, "owners": _errs_on_half_the_owners}


class Oracle:
    """A registered model that reads the label from the held-out rows and errs where its rule says:
    the gate's inputs are then known exactly. (Without the label, as in MLflow's signature
    example, it answers class 0.)"""

    def __init__(self, schema, rule: str):
        self.schema, self.rule, self.task = schema, rule, schema.target.task
        self.classes = list(schema.target.classes)
        self.version: str | None = None

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        target = self.schema.target.name
        y = df[target].map(self.classes.index).to_numpy() if target in df else np.zeros(len(df), int)
        return _proba(y, RULES[self.rule](df) & (target in df))

    def save(self, path: Path) -> Path:
        Path(path).write_bytes(pickle.dumps(self))
        return Path(path)


def test_evaluate_challenger_keeps_a_champion_the_challenger_fails_one_group_of(home):
    from ratchet.core.schema import dump_schema
    from ratchet.data.schema_inference import infer_schema
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
    from ratchet.promotion.promote import evaluate_challenger
    from ratchet.runtime.context import load_context
    from tests.conftest import CONFIG_FILES
    from tests.training.helpers import publish_batches

    ctx = load_context(CONFIG_FILES, home=str(home))
    frames = [generate_batch(i, 1000, seed=5) for i in range(3)]
    dump_schema(infer_schema(frames[0], DEMO_TARGET), ctx.settings.schema_path)
    commit = publish_batches(ctx, frames, home / "incoming")
    ctx.registry.activate()
    versions = {}
    for rule in RULES:
        with mlflow.start_run():
            uri = ctx.registry.log_predictor(Oracle(ctx.schema, rule), frames[0].drop(columns=[DEMO_TARGET]))
        versions[rule] = ctx.registry.register(uri, {"data_commit": commit, "window_batches": "0"})
    ctx.registry.set_alias("champion", versions["age5"])
    ctx.registry.set_alias("challenger", versions["owners"])

    plain = evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, ctx.cfg)
    assert plain.decision == "promote" and plain.evidence.slices is None  # off by default

    sliced_cfg = ctx.cfg.model_copy(update={"gate": ctx.cfg.gate.model_copy(
        update={"slices": ["home_ownership", "age"], "slice_min_rows": 30})})
    sliced = evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, sliced_cfg)
    assert sliced.decision == "keep"
    assert sliced.evidence.slices["worse"] == ["home_ownership=own"]
    assert "slice home_ownership=own" in sliced.reasons[0]
    assert sliced.evidence.p_value == plain.evidence.p_value < 0.05  # same rows, same main test
    json.dumps(sliced.evidence.to_dict(), allow_nan=False)  # what the ledger stores
