"""Configuration: YAML files validated by pydantic models.

The built-in configuration, every setting with a comment, ships in the package
(``ratchet/configs/ratchet.yaml``, ``BUILTIN_CONFIG``). A project's own files are
merged over it key by key (``config_layers``), so a project file, the tests'
override (fewer epochs, fewer trials) and the demo's hold only what differs, and
a test never runs on a config nobody ships.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ratchet.core.schema import Strict as _Strict
from ratchet.core.settings import CONFIG_DIR, Settings

BUILTIN_CONFIG = CONFIG_DIR / "ratchet.yaml"  # every setting, with comments
PROJECT_CONFIG = "ratchet.yaml"  # a project's own file: ./ratchet.yaml, else <home>/ratchet.yaml


# --------------------------------------------------------------------- stages
class DataConfig(_Strict):
    backend: Literal["embedded", "lakefs"] = "embedded"
    repository: str = "ratchet"
    main_branch: str = "main"
    batch_prefix: str = "batches/"
    drift_gate: bool = False  # reject a batch whose drift against main exceeds the threshold
    chunk_rows: int = Field(200_000, ge=1, description="rows an ingest reads, checks and profiles at a time")
    # schema inference (``ratchet init --schema-from``, ``ratchet.data.schema_inference``): written into the schema
    max_categories: int = Field(50, ge=1, description="a text column keeps its most frequent values, the rest: other")
    range_margin: float = Field(0.5, ge=0, description="numeric min/max: the sample's range widened by this x span")
    max_out_of_range_share: float = Field(
        0.01, ge=0, le=1, description="share of a column's rows out of range that rejects a batch (fewer: warnings)"
    )


class SearchParam(_Strict):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None
    # drawn only when an earlier parameter took one of these values, e.g. {family: [tabm]} (Optuna's
    # define-by-run conditional space: a TabM-only parameter never reaches the plain MLP)
    when: dict[str, list[Any]] | None = None


class TrainConfig(_Strict):
    model_class: str = "ratchet.training.model.module.TabularMLP"
    family: Literal["mlp", "mlp_ple", "tabm"] | None = Field(
        None, description="a built-in model family (ratchet.training.model.families); set, it replaces model_class; "
        "a search space's `family` parameter wins over both"
    )
    model_args: dict[str, Any] = Field(default_factory=dict)
    max_epochs: int = Field(20, ge=1)
    batch_size: int = Field(256, ge=1)
    learning_rate: float = 1e-3
    accelerator: str = "cpu"
    devices: int | str | list[int] = Field(
        1, description="per node; more than one process: ratchet starts one process per rank (DDP)"
    )
    strategy: str = Field(
        "auto", description="with several devices: auto/ddp/ddp_spawn run as ddp in ranks started by ratchet"
    )
    precision: str = "32-true"
    num_nodes: int = Field(1, ge=1)
    early_stopping_patience: int | None = Field(3, ge=1, description="epochs without val_loss progress; None: off")
    min_steps_per_epoch: int | None = Field(
        8, ge=1, description="a small training split gets a smaller batch, so an epoch takes this many steps"
    )
    min_epoch_steps: int | None = Field(
        None, ge=1, description="an epoch takes at least this many optimizer steps: a small training split is "
        "passed over several times an epoch (each pass reshuffled); None: one pass"
    )
    restore_best: bool = Field(True, description="the fit ends with its best validation epoch's weights")
    refit: bool = Field(
        False, description="the chosen trial is trained again on the training and validation rows together, for "
        "the epochs its early-stopped fit chose (ratchet.training.search.refit); the held-out rows stay held out"
    )
    max_time_s: float | None = Field(
        None, gt=0, description="a time budget per fit (Lightning's max_time): it stops at the step that passes it"
    )
    checkpointing: bool = Field(
        True, description="last.ckpt per trial under <home>/checkpoints; a retried trial resumes from it"
    )
    batches_per_step: int = Field(
        64, ge=1, description="optimizer steps per Lightning step for modules that take batch chunks (one process)"
    )
    callbacks: list[dict[str, Any]] = Field(
        default_factory=list, description="extra Lightning callbacks: [{class_path: pkg.mod.Class, init_args: {}}]"
    )
    seed: int = 7
    regression_loss: Literal["mse", "huber"] = Field(
        "mse", description="a regression target's training loss, on the standardised target"
    )
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    window_batches: int | None = Field(
        None, ge=1, description="train on the last K batches of the data commit; None: all"
    )
    window: Literal["all", "last", "since_drift", "best"] | None = Field(
        None,
        description="which batches to train on: all; the last window_batches; since_drift, the batches "
        "since the latest drift onset (at most window_batches); or best, the candidate window (newest k, all, "
        "since each onset) whose proxy model best predicts the newest batch's held-out rows. "
        "Default: last when window_batches is set, else all",
    )

    min_window_rows: int = Field(
        0, ge=0, description="since_drift: fewer rows than this after the onset also takes the batches before it"
    )
    window_proxy: Literal["auto", "linear", "forest", "model"] = Field(
        "linear",
        description="best: the model each candidate window is judged by (ratchet.training.choice): linear, "
        "forest, or the model itself (one fit at this config's parameters per candidate and origin); auto: the "
        "model where the batches hold at most window_model_rows rows, else linear",
    )
    window_model_rows: int = Field(10_000, ge=0, description="auto window_proxy: the model itself up to this many rows")
    window_tie_z: float = Field(
        1.96, ge=0, description="best: a candidate window whose loss is within this many standard errors of the "
        "lowest ties with it, and the tie goes to the most data (ratchet.training.choice); 1 is Breiman's "
        "one-standard-error rule, 1.96 a two-sided 5% test"
    )

    @property
    def window_rule(self) -> str:
        return self.window or ("last" if self.window_batches else "all")


class TuneConfig(_Strict):
    trials: int = Field(8, ge=1, description="finished trials the study reaches, over all workers and retries")
    pruning: bool = True
    pruner_startup_trials: int = Field(2, ge=0, description="median pruner: trials completed before pruning")
    pruner_warmup_epochs: int = Field(2, ge=0, description="median pruner: epochs of a trial before it can be pruned")
    heartbeat_s: int | None = Field(
        60, ge=1, description="a trial whose process died is failed and resumed after 2x this; None: off"
    )
    timeout_s: float | None = Field(None, gt=0, description="the search stops starting trials after this many seconds")
    search_space: dict[str, SearchParam] = Field(default_factory=dict)
    first_trial: dict[str, Any] | None = Field(
        None, description="a new study's first trial: these values of search_space parameters (the measured "
        "default), the others drawn; the search starts from a known good model instead of a random one"
    )
    keep_first_z: float | None = Field(
        2.0, ge=0, description="the first trial (first_trial) stays the pick unless another trial's validation "
        "loss is lower by more than this many standard errors of their per-row difference on the validation "
        "rows; None: the lowest validation loss wins (ratchet.training.model.tune.select_trial)"
    )

    @model_validator(mode="after")
    def _first_trial_in_space(self) -> TuneConfig:
        unknown = sorted(set(self.first_trial or {}) - set(self.search_space))
        if unknown:
            raise ValueError(f"tune.first_trial names parameter(s) not in tune.search_space: {unknown}")
        for name, value in (self.first_trial or {}).items():
            p = self.search_space[name]
            if p.type == "categorical" and value not in (p.choices or []):
                raise ValueError(f"tune.first_trial.{name}={value!r} is not among its choices {p.choices}")
        return self


class GateConfig(_Strict):
    metric: Literal["accuracy", "f1", "roc_auc", "log_loss"] = "accuracy"
    test: Literal["mcnemar", "bootstrap"] = "mcnemar"
    alpha: float = Field(0.05, gt=0, lt=0.5)
    min_effect: float = Field(0.0, ge=0.0)
    floor: float = 0.6  # absolute minimum of the metric for any champion (a maximum for log_loss)
    max_latency_ratio: float | None = Field(None, gt=0)  # challenger/champion batch latency
    max_size_bytes: int | None = Field(None, gt=0)
    bootstrap_samples: int = Field(2000, ge=100)
    seed: int = 0
    # the newest batches whose rows, when the champion never saw them, the challenger's predecessor (its
    # recipe trained just before each) and the champion are also compared on, pooled into the paired test
    # (ratchet.promotion.out_of_time); 0: the challenger's own held-out rows alone
    out_of_time_batches: int = Field(3, ge=0)
    # sliced evaluation (ratchet.promotion.slices): with a champion, the challenger must also not be
    # significantly worse (one-sided paired test, Holm-corrected at alpha) on any value of these columns
    slices: list[str] = Field(default_factory=list)
    # a champion a concept-drift alarm was raised against at ingest (its error on a labelled batch
    # significantly above its held-out error; ratchet.monitoring.concept): "better" holds the
    # challenger to the same test as ever; "not_worse" (opt-in) promotes it unless it is significantly
    # worse (the upper end of the improvement's interval below 0), the practical effect waived; what
    # each costs: ratchet.promotion.gate._judge, benchmarks/promotion_gate.py
    drifted_champion: Literal["better", "not_worse"] = "better"
    slice_min_rows: int = Field(30, ge=1)  # smaller slices are skipped (listed in the evidence)
    slice_bins: int = Field(4, ge=2)  # quantile bins of a numeric column with more distinct values
    # a regression target: metric (lower is better) and the paired test on per-row errors
    regression_metric: Literal["rmse", "mae"] = "mae"
    regression_loss: Literal["abs", "squared"] | None = Field(
        None, description="per-row error the test ranks; None: abs for mae, squared for rmse"
    )
    regression_test: Literal["wilcoxon+studentized", "studentized", "wilcoxon+bootstrap", "wilcoxon", "bootstrap"] = Field(
        "wilcoxon+studentized",
        description="default: both Wilcoxon on per-row errors and the studentized bootstrap test of the metric",
    )
    regression_floor: float = Field(
        0.0, description="minimum R² on the held-out rows; 0: no worse than predicting their mean"
    )


class ServingConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = 8765
    max_rows: int = Field(1000, ge=1)
    max_body_bytes: int = Field(2_000_000, ge=1)
    # rows are profiled off the request path every profile_flush_s, or sooner once this many are
    # buffered; one whylogs pass costs ~0.2 s whatever its size, so small batches cost CPU under load
    profile_batch_rows: int = Field(50_000, ge=1)
    profile_flush_s: float = 5.0
    profile_window_s: float = Field(60.0, gt=0)  # live profiles roll per window of this length
    # pandas-free request path for models built with ratchet's preprocessing (checked against the
    # model's own predict_proba when it loads; any other model is served through predict_proba)
    fast_path: bool = True
    # requests of at most this many rows are predicted on the event loop when the fast path serves
    # them (no thread hop); larger ones go to a worker thread. 0: always a worker thread
    inline_max_rows: int = Field(16, ge=0)
    # single-row requests that arrive in one turn of the event loop (one per ready connection) share
    # one forward of their model (as Triton's dynamic batcher, with no added wait): under concurrent
    # load a wide model (TabM) costs per row a fraction of its single-row forward. false: one each
    batch_inline: bool = True
    # torch intra-op threads in a process that only serves (`python -m ratchet.serving`); null: leave
    torch_threads: int | None = Field(1, ge=1)


class CanaryConfig(_Strict):
    """Progressive delivery of the challenger: ramp its traffic share step by step; at each step
    compare it with the champion on live traffic; roll back at once on a guardrail breach."""

    steps: list[float] = Field(default_factory=lambda: [0.05, 0.25, 0.5, 1.0])  # challenger shares
    step_s: float = Field(120.0, ge=0)  # each step lasts at least this long ...
    min_requests: int = Field(100, ge=0)  # ... and until the challenger served this many requests
    max_step_s: float = Field(1800.0, gt=0)  # a step still short of min_requests then: inconclusive

    @model_validator(mode="before")
    @classmethod
    def _earlier_names(cls, data: Any) -> Any:
        """``window_s`` and ``max_window_s``, the earlier names of ``step_s`` and ``max_step_s``
        ("window" now means only the batches a model trains on), still read: a project's file
        that names them wins over the built-in config, which never does."""
        if isinstance(data, dict):
            data = dict(data)
            for old, new in (("window_s", "step_s"), ("max_window_s", "max_step_s")):
                if old in data:
                    data[new] = data.pop(old)
        return data
    require_feedback: bool = False  # a step also needs min_feedback labels on the challenger's answers
    # a canary that ended inconclusive (not enough evidence, champion kept, challenger keeps its
    # alias): "keep" leaves it there; "approval" asks a person to promote it (release.approval's way)
    on_inconclusive: Literal["keep", "approval"] = "keep"
    poll_s: float = Field(5.0, gt=0)  # how often /stats is read and the guardrails are checked
    service_url: str | None = None  # default http://{serving.host}:{serving.port}
    admin_token_block: str = "ratchet-admin-token"  # Prefect Secret block when RATCHET_ADMIN_TOKEN is unset
    request_timeout_s: float = Field(10.0, gt=0)
    keep_challenger_on_rollback: bool = False  # false: the alias is removed (the version is tagged)
    # the release flow (a new challenger passed the offline gate): "auto" runs the canary when an
    # inference service answers at the URL above (the stack's, else serving host:port) and promotes
    # directly otherwise; "always" fails without a service; "never" always promotes directly
    on_release: Literal["auto", "always", "never"] = "auto"
    # errors (failed requests, and challenger failures absorbed by the champion): Wald's SPRT of
    # H0 "same error rate" against H1 "challenger's rate is error_rate_ratio times the champion's"
    alpha: float = Field(0.05, gt=0, lt=0.5)
    beta: float = Field(0.2, gt=0, lt=0.5)
    error_rate_ratio: float = Field(2.0, gt=1)
    max_error_rate: float = Field(0.05, gt=0, le=1)  # absolute cap on the challenger's error rate ...
    min_requests_for_error_rate: int = Field(50, ge=1)  # ... once it has served this many in the step
    # p99 latency: over both ratio x and slack + the champion's, judged at the end of each step
    max_p99_ratio: float = Field(1.5, gt=1)
    p99_slack_ms: float = Field(5.0, ge=0)
    max_p99_ms: float | None = Field(None, gt=0)  # absolute cap
    min_latency_samples: int = Field(500, ge=1)  # a p99 needs a few hundred samples to mean much
    # predicted-class distribution: Jensen-Shannon distance (base 2, 0..1) challenger vs champion
    max_prediction_js: float = Field(0.3, gt=0, le=1)
    min_prediction_rows: int = Field(200, ge=1)
    # live accuracy from /feedback: mixture SPRT (always valid) on the accuracy difference
    accuracy_alpha: float = Field(0.05, gt=0, lt=0.5)
    accuracy_margin: float = Field(0.0, ge=0)  # tolerated accuracy loss
    accuracy_tau: float = Field(0.05, gt=0)  # prior sd of the difference in the mixture
    min_feedback: int = Field(100, ge=1)
    # regression: the same mixture SPRT on log(challenger's live MAE / champion's), at accuracy_alpha
    mae_margin: float = Field(0.0, ge=0)  # tolerated relative MAE increase (0.05: 5 % worse)
    mae_tau: float = Field(0.1, gt=0)  # prior sd of the log MAE ratio in the mixture

    @field_validator("steps")
    @classmethod
    def _ramp(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("canary needs at least one step")
        if any(not 0 < s <= 1 for s in v) or any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError(f"steps must increase within (0, 1], got {v}")
        if v[-1] != 1.0:
            raise ValueError(f"the last step must be 1.0 (all traffic) before promotion, got {v[-1]}")
        return v


class ReleaseConfig(_Strict):
    """What a challenger that passed the offline gate needs before its canary (flows/release.py)."""

    # "required": the release pauses after the gate and waits for `ratchet approve` / `reject`
    # (or the flow run's resume form in Prefect's UI); "auto": no person in the loop
    approval: Literal["auto", "required"] = "auto"
    approval_timeout_s: int = Field(86400, ge=1)  # no answer by then: the champion is kept (recorded)
    approval_poll_s: int = Field(10, ge=1)  # how often the paused run looks for an answer


class NotifyConfig(_Strict):
    """Notifications: Prefect automations send signed JSON to a webhook (deployments/notifications.py,
    created by ``ratchet up``; the ``notify`` flow posts it) on data rejected, drift, kept/promoted,
    canary rolled back or inconclusive, approval requested, and any ratchet flow run Failed or Crashed."""

    webhook_url: str | None = None  # set: `ratchet up` saves it as the Webhook block below
    block: str = "ratchet-notify"  # the Prefect Webhook block (an existing one is used when no URL is set)
    # the Prefect Secret block whose value signs every message (X-Ratchet-Signature-256); made
    # with a random value by `ratchet up` when absent
    secret_block: str = "ratchet-notify-secret"


class DriftConfig(_Strict):
    p_value: float = 0.01  # a feature drifts when its test's p-value is below this
    min_drifted_share: float = 0.2  # drift is detected when this share of features drift
    # a feature drifts only when its effect is also at least this large (KS statistic D, or Cramer's V for
    # chi-square): with large profiles a test finds practically nil differences significant
    min_effect: float = Field(0.05, ge=0, le=1)
    # a drifted feature raises an alarm only when the champion uses it: its permutation importance at
    # training (relative rise of the held-out loss with the feature shuffled) is at least this
    min_importance: float = Field(0.03, ge=0)
    # concept drift: the champion's error on labelled batches and live feedback against its held-out error
    concept_alpha: float = Field(0.01, gt=0, lt=1)  # false-alarm rate per champion, over every batch/window
    concept_min_drop: float = Field(0.01, ge=0)  # accuracy points (regression: relative MSE rise) to ignore
    # prior shift: a labelled batch whose class shares differ from the champion's training rows' (p_value and
    # min_effect) re-weights the champion's probabilities to them (ratchet.core.prior_shift)
    # opt-in, behind a paired test at gate.alpha; on seattle-weather it cost (0.628 against 0.680 without:
    # benchmarks/drift_recovery.py --prior-correction)
    prior_correction: bool = False


class LoopConfig(_Strict):
    """How the automations close the loop (deployments/ reads these)."""

    debounce_s: int = Field(30, ge=0)  # publishes within this window give one training run
    drift_cooldown_s: int = Field(300, ge=0)  # at most one drift-triggered retraining per window
    monitor_interval_s: int = Field(300, ge=1)  # the monitoring flow's schedule
    crash_retry_cooldown_s: int = Field(300, ge=0)  # a crashed training run is run again, at most once per window
    # the runner's flow runs send a heartbeat this often (Prefect's minimum: 30 s); a run silent
    # for heartbeat_timeout_s (its runner died) is marked Crashed (deployments/heartbeats.py)
    heartbeat_s: int = Field(30, ge=30)
    heartbeat_timeout_s: int = Field(90, ge=10)
    # how often the runner (``ratchet up``) asks its Prefect server for runs that are due: a run an
    # automation asks for starts within this (Prefect's default, 10 s, put up to 20 s of waiting on
    # a retraining and its release); one cheap query to a server on the same machine
    runner_poll_s: float = Field(2.0, gt=0)
    work_pool: str = "ratchet-process"

    @model_validator(mode="after")
    def _timeout_outlasts_heartbeat(self) -> LoopConfig:
        if self.heartbeat_timeout_s <= self.heartbeat_s:
            raise ValueError(f"heartbeat_timeout_s ({self.heartbeat_timeout_s}) must exceed heartbeat_s "
                             f"({self.heartbeat_s}): a live run would be marked Crashed between two heartbeats")
        return self


class RetentionConfig(_Strict):
    """``ratchet gc`` and its scheduled deployment (``gc/scheduled``): what is kept (``ratchet.runtime.gc``)."""

    schedule: str = Field("0 3 * * *", description="cron (UTC) of the gc/scheduled deployment")
    rejected_branch_age_days: float = Field(30, ge=0)  # older rejected ingest branches go (reports kept)
    keep_versions: int = Field(5, ge=1)  # newest versions whose artifacts stay, besides aliases and ledger champions
    keep_ledger_versions: Literal["champions", "all"] = "champions"  # ledger versions kept: champions, or every one named
    profile_age_days: float = Field(30, ge=0)  # live profile windows older than this go
    grace_minutes: float = Field(60, ge=0)  # repository files younger than this stay (writes in flight)
    flow_run_age_days: float = Field(30, ge=0)  # Prefect flow runs that ended longer ago go, with their logs
    log_max_mb: float = Field(50, gt=0)  # a stack process log over this keeps its newest half

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError(f"not a cron expression of 5 fields: {v!r}")
        return v


class DemoConfig(_Strict):
    clean_batches: int = 4
    drift_batches: int = 4
    rows_per_batch: int = 1500
    requests: int = 200  # the inline demo: requests before drift, after drift, after retraining
    seed: int = 11
    # the event-driven demo (compressed time)
    requests_per_batch: int = 120  # single-row requests sent while a batch is the newest data
    batch_interval_s: float = 10.0  # time between two batches landing
    slices_per_batch: int = 3  # traffic measurements per batch interval
    settle_timeout_s: float = 420.0  # after the last batch, wait at most this for the automations
    quiet_s: float = 20.0  # ... and stop once training and release have been idle this long


class RatchetConfig(_Strict):
    model_name: str = "ratchet-classifier"
    experiment: str = "ratchet"
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    tune: TuneConfig = TuneConfig()
    gate: GateConfig = GateConfig()
    serving: ServingConfig = ServingConfig()
    canary: CanaryConfig = CanaryConfig()
    release: ReleaseConfig = ReleaseConfig()
    notify: NotifyConfig = NotifyConfig()
    drift: DriftConfig = DriftConfig()
    loop: LoopConfig = LoopConfig()
    retention: RetentionConfig = RetentionConfig()
    demo: DemoConfig = DemoConfig()

    def digest(self) -> str:
        """Stable hash of everything that shapes a model, tagged on each version."""
        payload = json.dumps(self.model_dump(mode="json", exclude={"retention"}), sort_keys=True)  # gc shapes no model
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --------------------------------------------------------------------- loading
def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


class ConfigError(ValueError):
    """A config file that is not YAML, not a mapping, or holds a bad setting: its message is one
    line naming the file and each bad key (``train.learning_rat: unknown setting ...``)."""


def default_config_files(home: Path | str | None = None) -> list[Path]:
    """The project's config files when none are named, the first that applies:
    ``RATCHET_CONFIG`` (paths joined by ``os.pathsep``), ``./ratchet.yaml``,
    ``<home>/ratchet.yaml`` (``home`` default: ``RATCHET_HOME``); else none, and the
    built-in defaults hold alone."""
    env = os.environ.get("RATCHET_CONFIG")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    home_dir = Path(home).expanduser().resolve() if home is not None else Settings().root
    for candidate in (Path.cwd() / PROJECT_CONFIG, home_dir / PROJECT_CONFIG):
        if candidate.is_file():
            return [candidate]
    return []


def config_layers(files: Sequence[Path | str] | None = None, settings: Settings | None = None) -> list[Path]:
    """Every file merged, in order: the built-in defaults, the profile's overlay (any profile
    but ``local``, whose overlay only restates the defaults), then ``files`` (default:
    ``default_config_files`` of the settings' home), so a project's file has the last word.
    The built-in file named again among ``files`` is not merged twice: it is the base already,
    and merged again it would undo the profile's overlay."""
    settings = settings or Settings()
    layers = [BUILTIN_CONFIG]
    if settings.profile != "local":
        layers.append(settings.profile_config)
    given = [Path(f) for f in files] if files is not None else default_config_files(settings.root)
    layers += [f for f in given if f.resolve() != BUILTIN_CONFIG]
    return layers


def load_config(
    files: Sequence[Path | str] | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    settings: Settings | None = None,
) -> RatchetConfig:
    """``files`` (default: the project's, ``default_config_files``) merged over the built-in
    defaults and the profile's overlay, then ``overrides``; validated. A missing file raises
    ``FileNotFoundError``; unreadable YAML or a bad setting, ``ConfigError`` (one line)."""
    return merge_config_files(config_layers(files, settings), overrides)


def merge_config_files(layers: Sequence[Path | str], overrides: dict[str, Any] | None = None) -> RatchetConfig:
    """Exactly ``layers`` merged in order, then ``overrides``; validated (see ``load_config``)."""
    merged: dict[str, Any] = {}
    sources: list[tuple[str, dict]] = []
    for f in map(Path, layers):
        if not f.is_file():
            raise FileNotFoundError(f"config file not found: {f}" + (" (a folder)" if f.is_dir() else ""))
        try:
            data = yaml.load(f.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}  # libyaml: 10x
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"config file {f}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from e
        if not isinstance(data, dict):
            raise ConfigError(f"config file {f} must hold a mapping at the top level")
        merged = _deep_merge(merged, data)
        sources.append((str(f), data))
    if overrides:
        merged = _deep_merge(merged, overrides)
        sources.append(("the overrides", overrides))
    try:
        return RatchetConfig.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(_describe(e, sources)) from e


def _describe(error: ValidationError, sources: list[tuple[str, dict]]) -> str:
    problems, files = [], []
    for err in error.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(loc[-1], _fields_at(loc[:-1]), n=1)
            problems.append(f"{key}: unknown setting" + (f" (did you mean {hint[0]}?)" if hint else ""))
        else:
            problems.append(f"{key}: {err['msg']}")
        source = next((name for name, data in reversed(sources) if _holds(data, loc)), None)
        if source and source not in files:
            files.append(source)
    return f"bad config in {', '.join(files) or 'the merged config'}: " + "; ".join(problems)


def _holds(data: Any, loc: tuple[str, ...]) -> bool:
    for part in loc:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _fields_at(loc: tuple[str, ...]) -> list[str]:
    """The setting names valid at ``loc`` (``("train",)``: TrainConfig's fields)."""
    model: type[BaseModel] = RatchetConfig
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
