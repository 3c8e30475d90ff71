"""The schema of the user's table: what a batch must look like to reach main.

A pydantic model written to ``<home>/schema.yaml`` by ``ratchet init`` (inference lives in
``ratchet.data.schema_inference``) and reviewed by a person.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    """A config or schema model: an unknown key is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


DType = Literal["float", "int", "category", "bool", "datetime", "text"]
Role = Literal["feature", "ignore"]
DatetimePart = Literal["year", "month", "day", "dayofweek", "hour", "minute"]
DEFAULT_DATETIME_PARTS: tuple[str, ...] = ("year", "month", "day", "dayofweek", "hour")


class ColumnSpec(Strict):
    """One column of the user's tabular data (the target apart).

    ``role``: ``feature`` (checked and fed to the model) or ``ignore`` (kept in the data
    repository and checked for presence, never fed to the model; ``ignore_reason`` says why).
    ``dtype``: ``float``, ``int``, ``bool``, ``category``, ``datetime`` (the model sees the
    calendar parts listed in ``datetime_parts``, derived from the raw value at training and
    serving alike) or ``text`` (an ignored identifier or free text).

    A ``category`` column with ``other_bucket: true`` keeps its most frequent values in
    ``categories``; every other value goes to one "other" bucket (never an unseen category).
    ``max_unseen_share`` / ``max_out_of_range_share``: the share of a batch's rows that may
    hold an unseen category / a value outside ``min``..``max`` before the batch is rejected
    (fewer are reported as warnings); None: the schema's.
    """

    name: str
    dtype: DType
    role: Role = "feature"
    ignore_reason: str | None = None
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    other_bucket: bool = False
    datetime_parts: list[DatetimePart] | None = None
    max_null_share: float = Field(0.0, ge=0.0, le=1.0)
    max_unseen_share: float | None = Field(None, ge=0.0, le=1.0)
    max_out_of_range_share: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> ColumnSpec:
        where = f"column {self.name!r}"
        if self.role == "feature":
            if self.dtype == "category" and not self.categories:
                raise ValueError(f"{where}: a category column needs 'categories'")
            if self.dtype == "text":
                raise ValueError(
                    f"{where}: a text column can only be ignored (role: ignore); "
                    "make it a category with 'categories' to feed it to the model"
                )
            if self.ignore_reason is not None:
                raise ValueError(f"{where}: 'ignore_reason' belongs to a column with role: ignore")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"{where}: min {self.min} > max {self.max}")
        if self.other_bucket and self.dtype != "category":
            raise ValueError(f"{where}: 'other_bucket' applies to a category column only")
        if self.datetime_parts is not None:
            if self.dtype != "datetime":
                raise ValueError(f"{where}: 'datetime_parts' applies to a datetime column only")
            if not self.datetime_parts or len(set(self.datetime_parts)) != len(self.datetime_parts):
                raise ValueError(f"{where}: 'datetime_parts' must list distinct parts, at least one")
        return self

    @property
    def parts(self) -> list[str]:
        """The calendar parts a datetime feature gives the model."""
        return list(self.datetime_parts or DEFAULT_DATETIME_PARTS)


Task = Literal["binary", "multiclass", "regression"]


class TargetSpec(Strict):
    """The column a model learns to predict: class labels (``binary``: two, ``multiclass``:
    three or more) or a number (``regression``: ``min``/``max`` record the observed range;
    they are not enforced)."""

    name: str
    task: Task
    classes: list[str | int] | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _task_of_old_files(cls, data: Any) -> Any:
        # schema files written before regression existed have classes and no task
        if isinstance(data, dict) and data.get("task") is None and isinstance(data.get("classes"), list):
            data = {**data, "task": "binary" if len(data["classes"]) == 2 else "multiclass"}
        return data

    @field_validator("classes")
    @classmethod
    def _two_classes(cls, v: list | None) -> list | None:
        if v is not None and len(v) < 2:
            raise ValueError("target needs at least two classes")
        return v

    @model_validator(mode="after")
    def _check_task(self) -> TargetSpec:
        if self.task == "regression":
            if self.classes is not None:
                raise ValueError(f"target {self.name!r}: a regression target has no 'classes'")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"target {self.name!r}: min {self.min} > max {self.max}")
            return self
        if self.classes is None:
            raise ValueError(f"target {self.name!r}: a {self.task} target needs 'classes'")
        if self.min is not None or self.max is not None:
            raise ValueError(f"target {self.name!r}: min/max apply to a regression target only")
        if (self.task == "binary") != (len(self.classes) == 2):
            raise ValueError(
                f"target {self.name!r}: task {self.task!r} does not fit {len(self.classes)} classes "
                "(binary: exactly two, multiclass: three or more)"
            )
        return self

    @property
    def is_regression(self) -> bool:
        return self.task == "regression"


class Schema(Strict):
    """What a batch must look like to reach main. Inferred by ``ratchet init
    --schema-from`` and reviewed by a person; nothing in the code names columns."""

    columns: list[ColumnSpec]
    target: TargetSpec
    min_rows: int = Field(1, ge=1)
    max_duplicate_share: float = Field(0.05, ge=0.0, le=1.0)
    # share of a batch's rows with an unseen category / an out-of-range value that rejects it
    # (fewer are warnings), for the columns that set none of their own
    max_unseen_share: float = Field(0.0, ge=0.0, le=1.0)
    max_out_of_range_share: float = Field(0.01, ge=0.0, le=1.0)
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
    def features(self) -> list[ColumnSpec]:
        """The columns fed to the model (role ``feature``), in schema order."""
        return [c for c in self.columns if c.role == "feature"]

    @property
    def ignored(self) -> list[ColumnSpec]:
        """The columns kept and checked for presence only (role ``ignore``)."""
        return [c for c in self.columns if c.role == "ignore"]

    @property
    def feature_names(self) -> list[str]:
        """The model's input columns (ignored columns are not among them)."""
        return [c.name for c in self.features]

    @property
    def row_key(self) -> list[str]:
        """The columns that make a row what it is: its features and its target. Ignored columns
        (ids, timestamps) are left out, so two rows that differ only there are the same row
        (``ratchet.training.window.split_frame`` puts them on one side)."""
        return [*self.feature_names, self.target.name]

    @property
    def drift_feature_names(self) -> list[str]:
        """The features whose shift counts as drift evidence: every feature but datetimes.

        A date/time's calendar parts move between time-ordered batches by construction (each
        monthly batch has its own month), so a test of them always "drifts"; comparing them with
        the same season instead would need a year of batches, which most histories lack. They are
        left out of drift reports and the training window's onset walk (docs/architecture.md)."""
        return [c.name for c in self.features if c.dtype != "datetime"]

    def unseen_limit(self, spec: ColumnSpec) -> float:
        return self.max_unseen_share if spec.max_unseen_share is None else spec.max_unseen_share

    def out_of_range_limit(self, spec: ColumnSpec) -> float:
        return self.max_out_of_range_share if spec.max_out_of_range_share is None else spec.max_out_of_range_share

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
    text = Path(path).read_text()
    return Schema.model_validate(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))  # libyaml: 10x


def dump_schema(schema: Schema, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # unset optional keys (None) are left out: the file a person reviews shows what applies
    Path(path).write_text(yaml.safe_dump(schema.model_dump(mode="json", exclude_none=True), sort_keys=False))


