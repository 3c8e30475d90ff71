"""What a registered model version records: the one owner of its registry tags.

MLflow keeps a version's metadata as string tags. Every other module reads and writes them
through the two typed records here, so a tag key is spelled in this module alone:

- ``VersionLineage``: written once, at registration: the data commit and the window of
  batches it was trained on, code, config, Optuna study and trial, the MLflow run, the
  held-out metrics. ``identity()`` is what makes two trainings the same (so a version is
  never trained twice on one window, config and code).
- ``VersionMarks``: what later stages write on the version: approval, the canary's end,
  garbage collection, the concept-drift verdicts on a champion.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

# the held-out metrics each registered version carries as tags (``ratchet history`` and the
# CLI show them without opening the run)
TAGGED_METRICS = ("test_accuracy", "test_rmse", "test_r2")
_APPROVAL_COMMENT_MAX = 5000  # MLflow's limit on a tag's value
_IMPORTANCE_MAX = 120  # features whose importance is tagged (the largest): the tag stays under the limit


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def _json_or_empty(value: str | None) -> dict:
    """A JSON object tag; {} when absent or cut short by the tag's length limit."""
    try:
        return json.loads(value) if value else {}
    except ValueError:
        return {}


def _float(value: str | None) -> float | None:
    return float(value) if value else None


@dataclass(frozen=True)
class VersionLineage:
    """Where a version came from. ``window_batches``: how many batches its training window
    held (the newest ones at ``data_commit``); ``holdout_batches``: the newest batches the gate
    scores it on, when fewer than the window (since a drift onset)."""

    data_commit: str
    window_batches: int | None = None
    window_rule: str | None = None
    data_window: str | None = None  # the window's batches, as a label ("batch-a .. batch-b")
    holdout_batches: int | None = None
    code_version: str | None = None
    config_hash: str | None = None
    optuna_study: str | None = None
    optuna_trial: int | None = None
    run_id: str | None = None
    trigger: str | None = None
    test_metrics: Mapping[str, float] = field(default_factory=dict)
    # the window's choice (rule "best"): every candidate window with its proxy loss, and the rule that chose
    window_candidates: tuple[Mapping, ...] = ()
    window_choice: str | None = None
    # permutation importance per feature on the held-out rows (relative rise of the loss when shuffled):
    # what drift is weighed by while this version is the champion
    feature_importance: Mapping[str, float] = field(default_factory=dict)
    # labelled training rows per class: the base rate its probabilities were learnt at (prior shift:
    # ratchet.core.prior_shift re-weights them to a newer batch's shares)
    class_counts: Mapping[str, int] = field(default_factory=dict)

    def identity(self) -> dict[str, str]:
        """The tags that make two trainings the same: data, window, config and code."""
        out = {"data_commit": self.data_commit, "window_batches": str(self.window_batches),
               "config_hash": self.config_hash, "code_version": self.code_version}
        return {k: v for k, v in out.items() if v is not None}

    def run_tags(self) -> dict[str, str]:
        """The training run's tags in MLflow (the run holds the lineage before a version exists)."""
        out = {"data_commit": self.data_commit, "data_window": self.data_window,
               "window_batches": self.window_batches, "config_hash": self.config_hash,
               "code_version": self.code_version, "optuna_study": self.optuna_study, "trigger": self.trigger}
        return {k: str(v) for k, v in out.items() if v is not None}

    def to_tags(self) -> dict[str, str]:
        """The registered version's tags."""
        out = {"run_id": self.run_id, "data_commit": self.data_commit, "window_batches": self.window_batches,
               "window_rule": self.window_rule, "holdout_batches": self.holdout_batches or None,
               "code_version": self.code_version, "config_hash": self.config_hash,
               "optuna_study": self.optuna_study, "optuna_trial": self.optuna_trial}
        tags = {k: str(v) for k, v in out.items() if v is not None}
        if self.window_candidates:
            tags["window_candidates"] = json.dumps(list(self.window_candidates), separators=(",", ":"))
            tags["window_choice"] = self.window_choice or ""
        if self.feature_importance:
            top = sorted(self.feature_importance.items(), key=lambda kv: -kv[1])[:_IMPORTANCE_MAX]
            tags["feature_importance"] = json.dumps({k: round(v, 4) for k, v in top}, separators=(",", ":"))
        if self.class_counts:
            tags["class_counts"] = json.dumps(dict(self.class_counts), separators=(",", ":"))[:_APPROVAL_COMMENT_MAX]
        return tags | {k: f"{self.test_metrics[k]:.4f}" for k in TAGGED_METRICS if k in self.test_metrics}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> VersionLineage:
        return cls(
            data_commit=tags.get("data_commit", ""),
            window_batches=_int(tags.get("window_batches")),
            window_rule=tags.get("window_rule"),
            data_window=tags.get("data_window"),
            holdout_batches=_int(tags.get("holdout_batches")),
            code_version=tags.get("code_version"),
            config_hash=tags.get("config_hash"),
            optuna_study=tags.get("optuna_study"),
            optuna_trial=_int(tags.get("optuna_trial")),
            run_id=tags.get("run_id"),
            trigger=tags.get("trigger"),
            test_metrics={k: float(tags[k]) for k in TAGGED_METRICS if tags.get(k)},
            window_candidates=tuple(json.loads(tags["window_candidates"])) if tags.get("window_candidates") else (),
            window_choice=tags.get("window_choice") or None,
            feature_importance=json.loads(tags["feature_importance"]) if tags.get("feature_importance") else {},
            class_counts=_json_or_empty(tags.get("class_counts")),
        )

    @property
    def scored_batches(self) -> int | None:
        """How many of the newest batches the gate scores: the hold-out since a drift onset
        when there is one, else the whole window."""
        return self.holdout_batches or self.window_batches


@dataclass(frozen=True)
class VersionMarks:
    """What later stages write on a version; ``None`` fields are not written (nor read as set)."""

    approval: str | None = None  # pending, approved, rejected, timeout, superseded
    approval_by: str | None = None
    approval_comment: str | None = None
    canary: str | None = None  # rolled_back, superseded, inconclusive
    artifacts_removed: bool = False  # gc removed its model files; the row and its record stay
    concept_live_onset: float | None = None  # unix seconds: the live monitor's onset on this champion
    concept_last_batch: str | None = None  # the newest labelled batch scored against it
    concept_last_score: float | None = None
    concept_onset: str | None = None  # the first batch of a concept change found by batch scoring
    # prior shift (ratchet.core.prior_shift): the class shares (JSON; "{}": none) its probabilities are
    # re-weighted to, and the labelled batch that set or cleared them
    prior_shares: str | None = None
    prior_batch: str | None = None

    _GC = ("gc", "artifacts_removed")

    def to_tags(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "artifacts_removed":
                if value:
                    out[self._GC[0]] = self._GC[1]
            elif f.name == "concept_live_onset" and value is not None:
                out[f.name] = f"{value:.3f}"
            elif f.name == "concept_last_score" and value is not None:
                out[f.name] = f"{value:.4f}"
            elif value:
                out[f.name] = str(value)[:_APPROVAL_COMMENT_MAX]
        return out

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> VersionMarks:
        return cls(
            approval=tags.get("approval"),
            approval_by=tags.get("approval_by"),
            approval_comment=tags.get("approval_comment"),
            canary=tags.get("canary"),
            artifacts_removed=tags.get(cls._GC[0]) == cls._GC[1],
            concept_live_onset=_float(tags.get("concept_live_onset")),
            concept_last_batch=tags.get("concept_last_batch"),
            concept_last_score=_float(tags.get("concept_last_score")),
            concept_onset=tags.get("concept_onset"),
            prior_shares=tags.get("prior_shares"),
            prior_batch=tags.get("prior_batch"),
        )
