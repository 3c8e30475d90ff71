"""``ratchet init``: create the home folder, the data repository and the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ratchet.core.schema import dump_schema, load_schema
from ratchet.data.infer import infer_schema, read_table
from ratchet.runtime.context import Context


def init_home(ctx: Context, schema_from: str | None = None, target: str | None = None, force: bool = False) -> dict[str, Any]:
    ctx.settings.ensure()
    main = ctx.repo.resolve(ctx.cfg.data.main_branch)
    out: dict[str, Any] = {
        "home": str(ctx.settings.root),
        "repository": ctx.cfg.data.repository,
        "main": main,
        "schema": None,
    }
    path = ctx.settings.schema_path
    if schema_from:
        if not target:
            raise ValueError("--schema-from needs --target COLUMN (the label column)")
        if path.exists() and not force:
            raise FileExistsError(f"{path} exists; pass --force to infer it again")
        schema = infer_schema(read_table(Path(schema_from)), target)
        dump_schema(schema, path)
        out["schema"] = str(path)
        out["columns"] = schema.feature_names
        out["target"] = schema.target.name
    elif path.exists():
        out["schema"] = str(path)
        out["columns"] = load_schema(path).feature_names
    return out
