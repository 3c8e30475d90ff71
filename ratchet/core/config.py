"""Configuration: YAML files validated by pydantic models.

The real configuration lives in ``configs/ratchet.yaml``. Tests and the demo
load that same file plus a small override file (fewer epochs, fewer trials),
merged key by key, so a test never runs on a config nobody ships.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator

from ratchet.core.schema import Strict as _Strict


# --------------------------------------------------------------------- stages
class DataConfig(_Strict):
    backend: Literal["embedded", "lakefs"] = "embedded"
    repository: str = "ratchet"
    main_branch: str = "main"
    batch_prefix: str = "batches/"
    drift_gate: bool = False  # reject a batch whose drift against main exceeds the threshold


class SearchParam(_Strict):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None


class TrainConfig(_Strict):
    model_class: str = "ratchet.training.model.module.TabularMLP"
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
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    window_batches: int | None = Field(
        None, ge=1, description="train on the last K batches of the data commit; None: all"
    )
    window: Literal["all", "last", "since_drift"] | None = Field(
        None,
        description="which batches to train on: all; the last window_batches; or since_drift, the batches "
        "since the latest drift onset (at most window_batches). Default: last when window_batches is set, else all",
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
    timeout_s: float | None = None
    search_space: dict[str, SearchParam] = Field(default_factory=dict)


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


class ServingConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = 8765
    max_rows: int = Field(1000, ge=1)
    max_body_bytes: int = Field(2_000_000, ge=1)
    # rows are profiled off the request path every profile_flush_s, or sooner once this many are
    # buffered; one whylogs pass costs ~0.2 s whatever its size, so small batches cost CPU under load
    profile_batch_rows: int = Field(5000, ge=1)
    profile_flush_s: float = 5.0
    profile_window_s: float = Field(60.0, gt=0)  # live profiles roll per window of this length
    # pandas-free request path for models built with ratchet's preprocessing (checked against the
    # model's own predict_proba when it loads; any other model is served through predict_proba)
    fast_path: bool = True
    # requests of at most this many rows are predicted on the event loop when the fast path serves
    # them (no thread hop); larger ones go to a worker thread. 0: always a worker thread
    inline_max_rows: int = Field(16, ge=0)
    # torch intra-op threads in a process that only serves (`python -m ratchet.serving`); null: leave
    torch_threads: int | None = Field(1, ge=1)


class CanaryConfig(_Strict):
    """Progressive delivery of the challenger: ramp its traffic share step by step; at each step
    compare it with the champion on live traffic; roll back at once on a guardrail breach."""

    steps: list[float] = Field(default_factory=lambda: [0.05, 0.25, 0.5, 1.0])  # challenger shares
    window_s: float = Field(120.0, ge=0)  # each step lasts at least this long ...
    min_requests: int = Field(100, ge=0)  # ... and until the challenger served this many requests
    max_window_s: float = Field(1800.0, gt=0)  # a step still short of min_requests then rolls back
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


class DriftConfig(_Strict):
    p_value: float = 0.01  # a feature drifts when its test's p-value is below this
    min_drifted_share: float = 0.2  # drift is detected when this share of features drift


class LoopConfig(_Strict):
    """How the automations close the loop (deployments/ reads these)."""

    debounce_s: int = Field(30, ge=0)  # publishes within this window give one training run
    drift_cooldown_s: int = Field(300, ge=0)  # at most one drift-triggered retraining per window
    monitor_interval_s: int = Field(300, ge=1)  # the monitoring flow's schedule
    crash_retry_cooldown_s: int = Field(300, ge=0)  # a crashed training run is run again, at most once per window
    work_pool: str = "ratchet-process"


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
    drift: DriftConfig = DriftConfig()
    loop: LoopConfig = LoopConfig()
    demo: DemoConfig = DemoConfig()

    def digest(self) -> str:
        """Stable hash of everything that shapes a model, tagged on each version."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
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


def default_config_files() -> list[Path]:
    """``RATCHET_CONFIG`` (paths joined by ``os.pathsep``), else ``configs/ratchet.yaml``."""
    env = os.environ.get("RATCHET_CONFIG")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [Path("configs/ratchet.yaml")]


def load_config(
    files: list[Path] | None = None, overrides: dict[str, Any] | None = None
) -> RatchetConfig:
    """Load and merge YAML files in order, then ``overrides``; validate the result."""
    merged: dict[str, Any] = {}
    for f in files if files is not None else default_config_files():
        f = Path(f)
        if not f.exists():
            raise FileNotFoundError(f"config file not found: {f}")
        data = yaml.safe_load(f.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"config file {f} must hold a mapping at the top level")
        merged = _deep_merge(merged, data)
    if overrides:
        merged = _deep_merge(merged, overrides)
    return RatchetConfig.model_validate(merged)
