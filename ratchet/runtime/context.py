"""Everything a stage needs, built from settings and config, created lazily.

No client is created at import time; ``load_context`` is called inside flows,
the CLI and tests, which can point it at a temporary home.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ratchet.core.config import RatchetConfig, config_layers, merge_config_files
from ratchet.core.schema import Schema, load_schema
from ratchet.core.settings import Settings


@dataclass
class Context:
    settings: Settings
    cfg: RatchetConfig
    config_files: list[Path] = field(default_factory=list)  # every file merged, in order

    @cached_property
    def repo(self):
        from ratchet.data.repository import open_repository

        return open_repository(self.settings, self.cfg.data)

    @cached_property
    def registry(self):
        from ratchet.training.registry import Registry

        # no MLflow import here (seconds): what logs, registers or loads points mlflow's
        # globals at the home itself (Registry.activate, register, load_predictor)
        return Registry(self.settings, self.cfg.model_name, self.cfg.experiment)

    @cached_property
    def ledger(self):
        from ratchet.promotion.ledger import Ledger

        return Ledger(self.settings.ledger)

    @property
    def schema(self) -> Schema:
        return load_schema(self.settings.schema_path)


def load_context(
    config_files: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    home: str | None = None,
) -> Context:
    """Settings from the environment; config from ``config_files`` (default: the project's,
    ``ratchet.core.config.default_config_files``: ``RATCHET_CONFIG``, ``./ratchet.yaml`` or
    ``<home>/ratchet.yaml``) merged over the built-in defaults and, for any profile but
    ``local``, the profile's overlay (``ratchet/configs/<profile>.yaml``), so
    ``RATCHET_PROFILE=cluster`` alone switches the stores and backends while a project's own
    file keeps the last word.

    ``RATCHET_NUM_NODES`` (set in each pod of a multi-node training job, from the
    job's node count) overrides ``train.num_nodes`` of the files: the job, not the
    image's config, knows how many nodes it started. ``overrides`` still win."""
    settings = Settings(home=Path(home)) if home else Settings()
    layers = config_layers(config_files or None, settings)
    if settings.num_nodes is not None:
        train = {**(overrides or {}).get("train", {})}
        train.setdefault("num_nodes", settings.num_nodes)
        overrides = {**(overrides or {}), "train": train}
    cfg = merge_config_files(layers, overrides)
    return Context(settings.ensure(), cfg, layers)
