"""Everything a stage needs, built from settings and config, created lazily.

No client is created at import time; ``load_context`` is called inside flows,
the CLI and tests, which can point it at a temporary home.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ratchet.core.config import RatchetConfig, default_config_files, load_config
from ratchet.core.schema import Schema, load_schema
from ratchet.core.settings import Settings


@dataclass
class Context:
    settings: Settings
    cfg: RatchetConfig

    @cached_property
    def repo(self):
        from ratchet.data.repository import open_repository

        return open_repository(self.settings, self.cfg.data)

    @cached_property
    def registry(self):
        from ratchet.training.registry import Registry

        reg = Registry(self.settings, self.cfg.model_name, self.cfg.experiment)
        reg.use_stores()  # the experiment is looked up only by what logs runs (Registry.activate)
        return reg

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
    """Settings from the environment, config from files (default: ``RATCHET_CONFIG`` or
    ``configs/ratchet.yaml``) with the profile's overlay (``configs/<profile>.yaml``)
    merged last, so ``RATCHET_PROFILE=cluster`` alone switches the stores and backends.
    The ``local`` overlay only restates the defaults and is not added, so a user's
    own config (say ``data.backend: lakefs``) keeps its word there.

    ``RATCHET_NUM_NODES`` (set in each pod of a multi-node training job, from the
    job's node count) overrides ``train.num_nodes`` of the files: the job, not the
    image's config, knows how many nodes it started. ``overrides`` still win."""
    settings = Settings(home=Path(home)) if home else Settings()
    files = [Path(f) for f in config_files] if config_files else default_config_files()
    overlay = settings.profile_config
    if settings.profile != "local" and overlay.exists() and all(f.resolve() != overlay.resolve() for f in files):
        files.append(overlay)
    if settings.num_nodes is not None:
        train = {**(overrides or {}).get("train", {})}
        train.setdefault("num_nodes", settings.num_nodes)
        overrides = {**(overrides or {}), "train": train}
    cfg = load_config(files, overrides)
    return Context(settings.ensure(), cfg)
