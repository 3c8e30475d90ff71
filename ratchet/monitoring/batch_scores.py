"""Labelled batches scored with the champion at ingest (concept drift, ``concept.py``).

A published batch carries its labels, so before it is committed the champion predicts it and
the share of rows right (for regression, the MSE) is tested against the champion's held-out
figure. The verdict goes into the batch's commit metadata (``ratchet.concept.*``) and onto the
champion's registry version (tags ``concept_last_batch``, ``concept_onset``); earlier verdicts
against the same champion are read back from the commit log, so the sequential correction
needs no state of its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from ratchet.core.config import RatchetConfig
from ratchet.core.prior_shift import PriorCheck, check_prior, class_counts, dumps
from ratchet.core.schema import Schema
from ratchet.data.concept_checks import scored_history
from ratchet.data.ingest import AuditedBatch
from ratchet.data.repository.base import DataRepository
from ratchet.monitoring.concept import Baseline, ConceptCheck, Sample, baseline_from, check, score_frame
from ratchet.training.registry import Registry
from ratchet.training.versions import VersionMarks


def champion_baseline(registry: Registry, schema: Schema) -> Baseline | None:
    """The champion's held-out error from its training run's metrics; None without a champion."""
    champion = registry.alias("champion")
    if champion is None:
        return None
    run = registry.client.get_run(registry.version_info(champion)["run_id"])
    return baseline_from(champion, dict(run.data.metrics), schema.target.is_regression)


class ScoredBatch(NamedTuple):
    """A batch with the champion's score attached (report and commit metadata), and the verdict."""

    audited: AuditedBatch
    verdict: ConceptCheck | None


def score_batch(
    repo: DataRepository, registry: Registry, schema: Schema, cfg: RatchetConfig, audited: AuditedBatch
) -> ScoredBatch:
    """Score a passed batch with the champion and test it; the batch comes back unchanged, with
    no verdict, when there is no champion, no label or the batch failed."""
    frame = audited.scoring_frame  # a batch over one chunk: its first chunk's rows
    if not audited.ok or frame is None or schema.target.name not in frame:
        return ScoredBatch(audited, None)
    base = champion_baseline(registry, schema)
    if base is None:
        return ScoredBatch(audited, None)
    history = [Sample(h.label, h.rows, h.error) for h in scored_history(repo, cfg.data.main_branch, base.version)]
    sample = score_frame(registry.load_predictor(base.version), frame, schema, audited.batch_id)
    verdict = check(history, sample, base, cfg.drift)
    return ScoredBatch(replace(audited, concept=verdict.to_dict(), metadata=verdict.metadata()), verdict)


def record_on_champion(registry: Registry, verdict: ConceptCheck) -> None:
    """The newest verdict on the champion's registry version (and its onset, once found)."""
    registry.mark(verdict.champion, VersionMarks(
        concept_last_batch=verdict.label, concept_last_score=verdict.score,
        concept_onset=verdict.onset if verdict.detected else None,
    ))


def adapt_prior(registry: Registry, schema: Schema, cfg: RatchetConfig, audited: AuditedBatch) -> PriorCheck | None:
    """Prior shift (``ratchet.core.prior_shift``): the published labelled batch's class counts
    against the champion's training rows'; when they moved (``drift.p_value`` and ``min_effect``)
    the batch's shares are marked on the champion where the champion re-weighted to them is
    significantly more accurate than as trained on the batch (a paired test, cross-fitted:
    ``crossfit_test``); else its mark is cleared. The counts and the test are of the rows the
    training split does not hold out, so no label of the rows the gate scores informs it. With
    ``drift.prior_correction`` off the check is made and returned (the base rate reported on its
    own, apart from feature drift) and nothing is marked. None: nothing to check (no champion, no
    label, a regression target,
    or a champion trained before its class counts were recorded). Call it after ``score_batch``:
    the batch is scored with the shares of the batches before it."""
    from ratchet.training.window import sides

    frame = audited.scoring_frame
    target = schema.target
    if target.is_regression or frame is None or target.name not in frame or not audited.ok:
        return None
    champion = registry.alias("champion")
    if champion is None:
        return None
    train = registry.lineage(champion).class_counts
    if not train:
        return None
    held, _ = sides(frame, cfg, schema.row_key)
    found = check_prior(train, class_counts(frame[~held][target.name], target.classes), target.classes, cfg.drift)
    if not cfg.drift.prior_correction:
        return replace(found, correction=False)
    if found.detected:
        found = replace(found, test=_reweighting_test(registry.load_predictor(champion), frame[~held], train,
                                                          target.name, cfg))
    registry.mark(champion, VersionMarks(prior_shares=dumps(found.batch_shares if found.applied else None),
                                         prior_batch=audited.batch_id))
    return found


def _reweighting_test(predictor, rows, train: dict, target: str, cfg: RatchetConfig) -> dict:
    """The champion re-weighted against as trained on ``rows`` (the batch's rows the split does not
    hold out), cross-fitted, at the gate's alpha (``ratchet.core.prior_shift.crossfit_test``)."""
    from ratchet.core.prior_shift import crossfit_test

    rows = rows[rows[target].notna()]
    if not len(rows):
        return {"rows": 0, "p_value": 1.0, "alpha": cfg.gate.alpha}
    predictor.prior_weights = None  # as trained
    return crossfit_test(predictor.predict_proba(rows), rows[target], predictor.classes, train, cfg.gate.alpha,
                         cfg.train.seed)


def live_concept_onset(registry: Registry) -> float | None:
    """When the live monitor found the champion's accuracy changed (unix seconds, the start of the
    feedback window it names; tag ``concept_live_onset``), or None."""
    champion = registry.alias("champion")
    if champion is None:
        return None
    return registry.marks(champion).concept_live_onset
