import json

import pandas as pd
import pytest
from scipy import stats

from ratchet.core.config import DriftConfig
from ratchet.data.profile_drift import drift_html, drift_report
from ratchet.data.profiling import (
    deserialize_profile,
    merge_profiles,
    profile_frame,
    profile_rows,
    serialize_profile,
)
from ratchet.demo.synthetic import DEMO_TARGET, FEATURES, generate_batch

SEED = 11
ROWS = 1500
CFG = DriftConfig(p_value=0.01, min_drifted_share=0.2)


@pytest.fixture(scope="module")
def batches() -> dict[str, pd.DataFrame]:
    return {
        "b0": generate_batch(0, ROWS, SEED),
        "b1": generate_batch(1, ROWS, SEED),
        "b2": generate_batch(2, ROWS, SEED),
        "drift": generate_batch(3, ROWS, SEED, data_drift_at=3),
    }


@pytest.fixture(scope="module")
def views(batches):
    return {k: profile_frame(df) for k, df in batches.items()}


def test_profile_counts(views, batches):
    v = views["b0"]
    assert set(v.get_columns()) == set(batches["b0"].columns)
    assert profile_rows(v) == ROWS
    income = v.get_column("income").get_metric("distribution")
    assert income.min == batches["b0"]["income"].min() and income.max == batches["b0"]["income"].max()


def test_no_drift_between_samples_of_one_distribution(views):
    r = drift_report(views["b0"], views["b1"], CFG, FEATURES)
    assert not r.detected, r.features
    assert set(r.features) == set(FEATURES)
    assert r.features["income"]["algorithm"] == "ks"
    assert r.features["purpose"]["algorithm"] == "chi-square"
    assert r.drifted_share < CFG.min_drifted_share


def test_drift_detected_on_shifted_data(views):
    r = drift_report(views["b0"], views["drift"], CFG, FEATURES)
    assert r.detected
    assert {"income", "age", "home_ownership"} <= set(r.drifted_features)
    assert "debt_ratio" not in r.drifted_features
    assert r.features["income"]["p_value"] < 1e-6
    assert r.drifted_share == pytest.approx(len(r.drifted_features) / len(FEATURES))
    json.dumps(r.to_dict())  # plain types only


def test_chi_square_is_a_two_sample_test(views, batches):
    # counts of a 5-value column are exact in the sketch, so the result equals scipy on the raw data
    r = drift_report(views["b0"], views["b1"], CFG, ["purpose"])
    table = pd.crosstab(
        pd.Series(["t"] * ROWS + ["r"] * ROWS),
        pd.concat([batches["b1"]["purpose"], batches["b0"]["purpose"]]).values,
    )
    expected = stats.chi2_contingency(table)
    assert r.features["purpose"]["p_value"] == pytest.approx(expected.pvalue)
    assert r.features["purpose"]["statistic"] == pytest.approx(expected.statistic)


def test_columns_default_and_unknown(views):
    r = drift_report(views["b0"], views["b1"], CFG)
    assert set(r.features) == set(FEATURES) | {DEMO_TARGET}
    with pytest.raises(ValueError, match=r"'nope' \(missing from reference and target\)"):
        drift_report(views["b0"], views["b1"], CFG, ["income", "nope"])


def test_serialize_round_trip(views):
    data = serialize_profile(views["b0"])
    assert isinstance(data, bytes) and len(data) > 0
    back = deserialize_profile(data)
    for name in ("age", "purpose"):
        before, after = (
            views["b0"].get_column(name).to_summary_dict(),
            back.get_column(name).to_summary_dict(),
        )
        # frequent items with equal counts may come back in another order
        fi_before, fi_after = (
            before.pop("frequent_items/frequent_strings"),
            after.pop("frequent_items/frequent_strings"),
        )
        assert after.keys() == before.keys()
        for key, value in before.items():
            assert after[key] == value or (value != value and after[key] != after[key]), key  # nan == nan
        assert sorted(map(repr, fi_after)) == sorted(map(repr, fi_before))
    assert not drift_report(views["b0"], back, CFG, FEATURES).detected
    with pytest.raises(ValueError, match="empty"):
        deserialize_profile(b"")


def test_merge(views, batches):
    merged = merge_profiles([views["b0"], views["b1"]])
    assert profile_rows(merged) == 2 * ROWS
    both = pd.concat([batches["b0"], batches["b1"]])
    dist = merged.get_column("age").get_metric("distribution")
    assert dist.min == both["age"].min() and dist.max == both["age"].max()
    assert dist.avg == pytest.approx(both["age"].mean())
    # a merged reference against a fresh batch of the same distribution: no drift
    assert not drift_report(merged, views["b2"], CFG, FEATURES).detected
    with pytest.raises(ValueError):
        merge_profiles([])


def test_drift_html(tmp_path, views):
    path = drift_html(
        views["b0"], views["drift"], tmp_path / "reports" / "drift.html", cfg=CFG, columns=FEATURES
    )
    text = path.read_text()
    assert "drift detected" in text and "income" in text and "DRIFT" in text
    assert "http" not in text  # readable offline
    assert not (tmp_path / "reports" / "drift.whylogs.html").exists()


@pytest.mark.slow  # whylogs compiles its report template with pybars on every call: ~5 s
def test_drift_html_with_whylogs_report(tmp_path, views):
    path = drift_html(views["b0"], views["drift"], tmp_path / "drift.html", cfg=CFG, whylogs_report=True)
    interactive = tmp_path / "drift.whylogs.html"
    assert "drift.whylogs.html" in path.read_text()
    assert interactive.exists() and "income" in interactive.read_text()


def test_holm_adjusts_p_values_as_statsmodels_does():
    """Drift reports adjust their features' p-values with ``holm`` (statsmodels' import avoided)."""
    import numpy as np
    from statsmodels.stats.multitest import multipletests

    from ratchet.data.profile_drift import holm

    rng = np.random.default_rng(3)
    for m in (2, 3, 7, 12):
        p = rng.uniform(0, 1, m) ** 3
        np.testing.assert_allclose(holm(list(p)), multipletests(p, method="holm")[1], rtol=0, atol=1e-15)
    assert holm([0.01, 0.01, 0.5]) == [0.03, 0.03, 0.5]
