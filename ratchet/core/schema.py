"""The schema of the user's table: what a batch must look like to reach main.

A pydantic model written to ``<home>/schema.yaml`` by ``ratchet init`` (inference lives in
``ratchet.data.infer``) and reviewed by a person.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    """A config or schema model: an unknown key is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


DType = Literal["float", "int", "category", "bool"]


class ColumnSpec(Strict):
    """One feature column of the user's tabular data."""

    name: str
    dtype: DType
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    max_null_share: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> ColumnSpec:
        if self.dtype == "category" and not self.categories:
            raise ValueError(f"column {self.name!r}: a category column needs 'categories'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r}: min {self.min} > max {self.max}")
        return self


class TargetSpec(Strict):
    name: str
    classes: list[str | int]

    @field_validator("classes")
    @classmethod
    def _two_classes(cls, v: list) -> list:
        if len(v) < 2:
            raise ValueError("target needs at least two classes")
        return v


class Schema(Strict):
    """What a batch must look like to reach main. Inferred by ``ratchet init
    --schema-from`` and reviewed by a person; nothing in the code names columns."""

    columns: list[ColumnSpec]
    target: TargetSpec
    min_rows: int = Field(1, ge=1)
    max_duplicate_share: float = Field(0.05, ge=0.0, le=1.0)
    allow_extra_columns: bool = False
    max_file_mb: float = Field(256.0, gt=0)

    @model_validator(mode="after")
    def _unique(self) -> Schema:
        names = [c.name for c in self.columns]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate column names in schema: {sorted(dup)}")
        if self.target.name in names:
            raise ValueError(f"target {self.target.name!r} must not also be a feature column")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def load_schema(path: Path) -> Schema:
    if not Path(path).exists():
        raise FileNotFoundError(
            f"no schema at {path}: run `ratchet init --schema-from FILE --target COLUMN` first"
        )
    return Schema.model_validate(yaml.safe_load(Path(path).read_text()))


def dump_schema(schema: Schema, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(schema.model_dump(mode="json"), sort_keys=False))


