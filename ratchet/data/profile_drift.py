"""Drift between two whylogs profiles (``ratchet.data.profiling``): a batch against main, live
traffic against the training data.

Drift runs through whylogs' ``calculate_drift_scores``: whylogs' own
Kolmogorov-Smirnov test on the quantile sketches for numeric columns, and a
chi-square test on the frequent-item counts for categorical and boolean
columns. For the latter ratchet plugs in ``TwoSampleChiSquare`` instead of
whylogs' ``ChiSquare``, which is a one-sample test (see that class). Both are
computed from the sketches, not the raw data; see ``drift_report``.
"""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import ratchet.data.profiling  # noqa: F401 - first: it opts out of whylogs' telemetry before whylogs loads
from ratchet.core.config import DriftConfig
from ratchet.core.imports import without_sklearn

with without_sklearn():  # as in ratchet.data.profiling (which opted out of whylogs' telemetry first)
    from scipy import stats
    from whylogs.core import DatasetProfileView
    from whylogs.core.view.column_profile_view import ColumnProfileView
    from whylogs.viz.drift.column_drift_algorithms import (
        ColumnDriftAlgorithm,
        DriftAlgorithmScore,
        calculate_drift_scores,
    )
    from whylogs.viz.utils.frequent_items_calculations import get_frequent_stats


# ----------------------------------------------------------------------- drift
@dataclass
class DriftReport:
    """Per feature: ``algorithm`` ("ks" or "chi-square", None when the column
    could not be scored), ``statistic``, ``p_value``, ``drifted``."""

    features: dict[str, dict[str, Any]]
    drifted_share: float
    detected: bool

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f["drifted"]]

    @property
    def ignored_shifts(self) -> list[str]:
        """Drifted features the champion barely uses: listed, never an alarm."""
        return [name for name, f in self.features.items() if f["drifted"] and not f.get("counted", True)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TwoSampleChiSquare(ColumnDriftAlgorithm):
    """Chi-square test of homogeneity on two profiles' frequent-item counts.

    Why not whylogs' ``ChiSquare``: it takes the reference's proportions as the
    exact expected distribution (a one-sample goodness-of-fit test), ignoring
    that the reference is a sample too. For two equal-size samples of the same
    distribution that roughly doubles the statistic; in our check 8 of 20 clean
    synthetic batches "drifted" on a 5-category column at p < 0.01. Here the
    counts still come from whylogs' sketches (``get_frequent_stats``) and the
    test is scipy's ``chi2_contingency`` on the 2 x K table. Values outside the
    sketch's frequent items, and nulls, go into one "other" bucket.
    """

    def __init__(self) -> None:
        self.name = "chi-square"
        super().__init__(None)

    @staticmethod
    def _counts(column: ColumnProfileView) -> tuple[dict[str, float], float] | None:
        fs = get_frequent_stats(column, config=None)
        if not fs or fs["total_count"] <= 0:
            return None
        counts = {str(i["value"]): float(i["estimate"]) for i in fs["frequent_items"]}
        return counts, max(0.0, fs["total_count"] - sum(counts.values()))

    def calculate(
        self,
        target_column_view: ColumnProfileView,
        reference_column_view: ColumnProfileView,
        with_thresholds: bool = False,
    ) -> DriftAlgorithmScore | None:
        tgt, ref = self._counts(target_column_view), self._counts(reference_column_view)
        if tgt is None or ref is None:
            return None
        (t_items, t_other), (r_items, r_other) = tgt, ref
        values = sorted(set(t_items) | set(r_items))
        table = [[t_items.get(v, 0.0) for v in values], [r_items.get(v, 0.0) for v in values]]
        if t_other > 0 or r_other > 0:
            table[0].append(t_other)
            table[1].append(r_other)
        if len(table[0]) < 2:  # one value on both sides: nothing can have moved
            return DriftAlgorithmScore(algorithm=self.name, pvalue=1.0, statistic=0.0)
        res = stats.chi2_contingency(table)
        return DriftAlgorithmScore(
            algorithm=self.name, pvalue=float(res.pvalue), statistic=float(res.statistic)
        )


def _is_categorical(column: ColumnProfileView) -> bool:
    """No numeric values in the distribution sketch, or only booleans: score with chi-square."""
    dist = column.get_metric("distribution")
    if dist is None or dist.kll.value.is_empty():
        return True
    types = column.get_metric("types")
    if types is None:
        return False
    return types.boolean.value > 0 and types.integral.value == 0 and types.fractional.value == 0


def _finite_or_none(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _effect(score: dict[str, Any], ref: ColumnProfileView, tgt: ColumnProfileView) -> float | None:
    """How large a difference is, whatever the sample sizes: KS's D itself, or Cramer's V
    (sqrt(chi2 / n) on a 2 x K table) for chi-square."""
    stat = _finite_or_none(score.get("statistic"))
    if score.get("algorithm") != "chi-square":
        return stat
    n = sum(c.get_metric("counts").n.value for c in (ref, tgt) if c.get_metric("counts") is not None)
    return 1.0 if stat is None else (math.sqrt(stat / n) if n else None)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (as statsmodels' ``multipletests(method="holm")``,
    without its imports): the i-th smallest times (m - i), made monotone, at most 1."""

    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1)))
    out = np.empty_like(stepped)
    out[order] = stepped
    return out.tolist()


def drift_report(
    reference: DatasetProfileView,
    target: DatasetProfileView,
    cfg: DriftConfig,
    columns: list[str] | None = None,
    importance: Mapping[str, float] | None = None,
) -> DriftReport:
    """Compare ``target`` (new data or traffic) against ``reference`` (training data).

    ``columns``: the features to score (pass the schema's feature names so the
    label and any extra columns are left out); default all columns in both
    profiles. A feature drifts when whylogs' test gives ``p_value < cfg.p_value`` (after Holm's
    correction over the features scored, ``p_adjusted``: with one test per feature, ten features
    at 0.01 would otherwise flag one in ten clean reports) and the difference is at least
    ``cfg.min_effect`` (KS's D, or Cramer's V for chi-square).
    Drift is detected when at least one feature drifted and the drifted share of
    scored features is ``>= cfg.min_drifted_share``.

    ``importance``: the champion's permutation importance per feature, measured at training (the
    relative rise of its held-out loss when the feature is shuffled). A drifted feature below
    ``cfg.min_importance`` is listed (``counted: False``) but raises no alarm: a shift in an input
    the model ignores cannot change its error. A feature missing from ``importance`` counts.

    Why an effect floor: a p-value alone answers "is there any difference", and its power
    grows with the rows on both sides; the monitor compares a large reference (every
    training batch) with live windows that grow with traffic, and traffic often repeats
    rows (replayed, or the same entities asking again), which a test counts as independent
    evidence. A D of 0.02 is then "significant" on unchanged traffic. The floor keeps
    the test's p-value for small samples and asks large ones for a difference that
    matters. The tests run on sketches: KLL's rank error (about 0.3% at whylogs' k) is
    well below the floor.
    """
    ref_cols = set(reference.get_columns())
    tgt_cols = set(target.get_columns())
    if columns is None:
        columns = sorted(ref_cols & tgt_cols)
    else:
        missing = [
            f"{c!r} (missing from {' and '.join(w for w, cols in (('reference', ref_cols), ('target', tgt_cols)) if c not in cols)})"
            for c in columns
            if c not in ref_cols or c not in tgt_cols
        ]
        if missing:
            raise ValueError(f"drift_report: column(s) not in both profiles: {', '.join(missing)}")
    ref_views, tgt_views = reference.get_columns(), target.get_columns()
    drift_map: dict[str, ColumnDriftAlgorithm] = {
        c: TwoSampleChiSquare()
        for c in columns
        if _is_categorical(ref_views[c]) and _is_categorical(tgt_views[c])
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = calculate_drift_scores(
            target_view=target, reference_view=reference, drift_map=drift_map or None, with_thresholds=False
        )

    features: dict[str, dict[str, Any]] = {}
    for name in columns:
        s = scores.get(name)
        if s is None:
            # whylogs could not score it (e.g. empty in one profile): it does not count.
            features[name] = {"algorithm": None, "statistic": None, "p_value": None, "effect": None,
                              "drifted": False}
            continue
        p = s.get("pvalue")
        p = None if p is None else float(p)
        effect = _effect(s, ref_views[name], tgt_views[name])
        features[name] = {
            "algorithm": s.get("algorithm"),
            # chi-square's statistic is inf when the target has a value the reference never had
            "statistic": _finite_or_none(s.get("statistic")),
            "p_value": p,
            "effect": effect,
            "drifted": bool(p is not None and p < cfg.p_value and (effect is None or effect >= cfg.min_effect)),
        }
    scored = [f for f in features.values() if f["p_value"] is not None]
    if len(scored) > 1:  # one report tests every feature: Holm's correction keeps p_value per report
        adjusted = holm([f["p_value"] for f in scored])
        for f, q in zip(scored, adjusted, strict=True):
            f["p_adjusted"] = float(q)
            f["drifted"] = bool(f["drifted"] and q < cfg.p_value)
    for name, f in features.items():
        weight = None if importance is None else importance.get(name)
        f["importance"] = weight
        f["counted"] = bool(f["drifted"] and (weight is None or weight >= cfg.min_importance))
    n_drifted = sum(f["counted"] for f in scored)
    share = n_drifted / len(scored) if scored else 0.0
    detected = n_drifted > 0 and share >= cfg.min_drifted_share
    return DriftReport(features=features, drifted_share=share, detected=detected)


def _report_table_html(report: DriftReport, cfg: DriftConfig) -> str:
    rows = []
    for name, f in report.features.items():
        p = "-" if f["p_value"] is None else f"{f['p_value']:.3g}"
        stat = "-" if f["statistic"] is None else f"{f['statistic']:.3g}"
        flag = "DRIFT" if f["drifted"] else ""
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(str(f['algorithm'] or '-'))}</td>"
            f"<td>{stat}</td><td>{p}</td><td><b>{flag}</b></td></tr>"
        )
    verdict = "drift detected" if report.detected else "no drift detected"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ratchet drift report</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 10px;border-bottom:1px solid #ddd}</style>"
        "</head><body>"
        f"<h1>Drift report: {verdict}</h1>"
        f"<p>{report.drifted_share:.0%} of scored features drifted (p-value &lt; {cfg.p_value}); "
        f"detection needs at least {cfg.min_drifted_share:.0%}.</p>"
        "<table><tr><th>feature</th><th>test</th><th>statistic</th><th>p-value</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
    )


def drift_html(
    reference: DatasetProfileView,
    target: DatasetProfileView,
    path: Path | str,
    *,
    cfg: DriftConfig | None = None,
    columns: list[str] | None = None,
    whylogs_report: bool = False,
) -> Path:
    """Write a self-contained HTML drift table (from ``drift_report``) to ``path``; return ``path``.

    Why not whylogs' ``NotebookProfileVisualizer.summary_drift_report`` alone: it
    renders without network, but the page loads Handlebars, jQuery, d3 and
    Bootstrap from CDNs and builds its table in the browser, so offline it shows
    nothing; and it recompiles a 52 kB Handlebars template with pybars on every
    call, about 5 s of CPU. With ``whylogs_report=True`` that interactive report
    is also written as ``<stem>.whylogs.html`` and linked from the table.
    """
    cfg = cfg or DriftConfig()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    report = drift_report(reference, target, cfg, columns)

    extra = ""
    if whylogs_report:
        whylogs_path = path.with_name(path.stem + ".whylogs.html")
        try:
            from whylogs.viz import NotebookProfileVisualizer

            viz = NotebookProfileVisualizer()
            viz.set_profiles(target_profile_view=target, reference_profile_view=reference)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                whylogs_path.write_text(viz.summary_drift_report().data, encoding="utf-8")
            extra = (
                f"<p>whylogs' interactive report: <a href='{html.escape(whylogs_path.name)}'>"
                f"{html.escape(whylogs_path.name)}</a> (needs internet access to load its scripts).</p>"
            )
        except Exception as e:  # the table alone is still a complete report
            extra = f"<p>whylogs' interactive report could not be rendered: {html.escape(repr(e))}</p>"
    path.write_text(_report_table_html(report, cfg) + extra + "</body></html>", encoding="utf-8")
    return path
