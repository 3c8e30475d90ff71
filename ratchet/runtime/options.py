"""Where a flow run finds its config and stores: one parameter model for every flow.

Deployments leave it at its default (the runner's environment names the home and the
config files); the CLI and tests pass one. A pydantic model, so Prefect's UI shows its
fields with their descriptions in a flow's "Custom run" form.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ratchet.core.config import _deep_merge
from ratchet.runtime.context import Context, load_context


class RunOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    config_files: list[str] | None = Field(
        None,
        description="config YAML files merged in order over the built-in defaults "
        "(default: RATCHET_CONFIG, else ./ratchet.yaml, else <home>/ratchet.yaml)",
    )
    overrides: dict[str, Any] | None = Field(
        None, description="settings merged over the files, e.g. {\"tune\": {\"trials\": 2}}"
    )
    home: str | None = Field(None, description="home folder of the embedded stores (default: RATCHET_HOME)")

    def context(self) -> Context:
        return load_context(self.config_files, self.overrides, self.home)

    def at_home(self, home: str) -> RunOptions:
        """The same options, pinned to ``home`` (a subflow must not find another one)."""
        return self.model_copy(update={"home": home})

    def merged(self, overrides: dict[str, Any] | None) -> RunOptions:
        """The same options with ``overrides`` merged over their own (a flow parameter that
        stands for a setting, e.g. the training window the UI's form offers); None: unchanged."""
        if not overrides:
            return self
        return self.model_copy(update={"overrides": _deep_merge(dict(self.overrides or {}), overrides)})
