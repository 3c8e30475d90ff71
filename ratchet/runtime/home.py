"""``ratchet init``: create the home folder, the data repository and the schema."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ratchet.core.schema import dump_schema, load_schema
from ratchet.data.schema_inference import infer_schema, read_table
from ratchet.runtime.context import Context


def init_home(
    ctx: Context,
    schema_from: str | None = None,
    target: str | None = None,
    force: bool = False,
    *,
    ignore: str | Sequence[str] = (),
    feature: str | Sequence[str] = (),
    task: str | None = None,
) -> dict[str, Any]:
    """Create the home and the data repository; with ``schema_from``, infer the schema.

    ``ignore`` / ``feature``: columns to ignore / keep as features whatever inference says
    (``--ignore COL,...`` / ``--feature COL,...``); ``task`` overrides the target's task.
    The result's ``ignored`` maps each column the model will not see to the reason, all
    found in one pass (``ratchet.data.schema_inference``)."""
    if not schema_from and (ignore or feature or task):
        raise ValueError("--ignore, --feature and --task apply when inferring a schema: add --schema-from FILE")
    ctx.settings.ensure()
    main = ctx.repo.resolve(ctx.cfg.data.main_branch)
    out: dict[str, Any] = {
        "home": str(ctx.settings.root),
        "repository": ctx.cfg.data.repository,
        "main": main,
        "schema": None,
    }
    path = ctx.settings.schema_path
    schema = None
    if schema_from:
        if not target:
            raise ValueError("--schema-from needs --target COLUMN (the label column)")
        if path.exists() and not force:
            raise FileExistsError(f"{path} exists; pass --force to infer it again")
        data = ctx.cfg.data
        schema = infer_schema(
            read_table(Path(schema_from)),
            target,
            margin=data.range_margin,
            max_categories=data.max_categories,
            max_out_of_range_share=data.max_out_of_range_share,
            ignore=ignore,
            feature=feature,
            task=task,
        )
        dump_schema(schema, path)
        out["target"] = schema.target.name
    elif path.exists():
        schema = load_schema(path)
    if schema is not None:
        out["schema"] = str(path)
        out["columns"] = schema.feature_names
        out["ignored"] = {c.name: c.ignore_reason or "ignored" for c in schema.ignored}
    return out
