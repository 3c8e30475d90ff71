"""Versioned data repositories: the embedded backend (default) and lakeFS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet.data.repository.base import (
    Change,
    Commit,
    DataRepoError,
    DataRepository,
    MergeConflict,
    NothingToCommit,
    ObjectNotFound,
    RefNotFound,
)

if TYPE_CHECKING:
    from ratchet.core.config import DataConfig
    from ratchet.core.settings import Settings

__all__ = [
    "Change",
    "Commit",
    "DataRepoError",
    "DataRepository",
    "MergeConflict",
    "NothingToCommit",
    "ObjectNotFound",
    "RefNotFound",
    "open_repository",
]


def open_repository(settings: Settings, cfg: DataConfig) -> DataRepository:
    """The repository named by config: embedded under the home folder, or lakeFS."""
    if cfg.backend == "lakefs":
        from ratchet.data.repository.lakefs import LakeFSRepository

        return LakeFSRepository.from_env(cfg.repository, main_branch=cfg.main_branch)
    from ratchet.data.repository.embedded import EmbeddedRepository

    return EmbeddedRepository.open_or_init(settings.data_dir / cfg.repository, main_branch=cfg.main_branch)
