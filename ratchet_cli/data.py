"""``ratchet data``: branches, commits, diffs, merges and checks of the data repository.

Every command takes ``--json`` and then prints exactly one JSON object on
stdout (errors too: ``{"error": ...}``), with exit code 1 on failure.
The repository is the one named by the configuration (``--config``, ``RATCHET_CONFIG``,
``./ratchet.yaml`` or ``<home>/ratchet.yaml`` over the built-in defaults) under the home
folder (``RATCHET_HOME``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from ratchet.data.repository.base import Commit, DataRepoError, DataRepository, MergeConflict

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None, help=__doc__.split("\n")[0])
branch_app = typer.Typer(
    no_args_is_help=True, add_completion=False, rich_markup_mode=None, help="Create, list or delete branches."
)
app.add_typer(branch_app, name="branch")

JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]
MetaOpt = Annotated[list[str] | None, typer.Option("--meta", help="metadata KEY=VALUE; repeatable")]


def open_configured_repository() -> DataRepository:
    from ratchet.core.config import load_config
    from ratchet.core.settings import get_settings
    from ratchet.data.repository import open_repository

    return open_repository(get_settings().ensure(), load_config().data)


def _emit(result: dict[str, Any], as_json: bool, human: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
    else:
        typer.echo(human)


def _fail(message: str, as_json: bool, **extra: Any) -> NoReturn:
    if as_json:
        sys.stdout.write(json.dumps({"error": message, **extra}, default=str) + "\n")
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def _run(as_json: bool, action: Callable[[DataRepository], tuple[dict[str, Any], str]]) -> None:
    """Open the repository, run ``action``, print its result; map errors to exit 1."""
    try:
        repo = open_configured_repository()
        result, human = action(repo)
    except MergeConflict as e:
        _fail(str(e), as_json, type="MergeConflict", paths=e.paths)
    except (DataRepoError, FileNotFoundError, ValueError) as e:
        _fail(str(e), as_json, type=type(e).__name__)
    _emit(result, as_json, human)


def _parse_meta(items: list[str] | None) -> dict[str, str]:
    meta: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"metadata must be KEY=VALUE, got {item!r}", param_hint="--meta")
        meta[key] = value
    return meta


def _commit_dict(c: Commit) -> dict[str, Any]:
    return {**asdict(c), "parents": list(c.parents)}


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --------------------------------------------------------------------- branches
@branch_app.command("create")
def branch_create(
    name: str,
    source: Annotated[str, typer.Option("--from", help="branch, tag or commit to start from")] = "main",
    as_json: JsonOpt = False,
) -> None:
    """Create a branch (no data is copied)."""

    def act(repo: DataRepository):
        head = repo.create_branch(name, source)
        return {"branch": name, "source": source, "commit": head}, f"created {name} at {head[:12]}"

    _run(as_json, act)


@branch_app.command("list")
def branch_list(as_json: JsonOpt = False) -> None:
    """Branches and their head commits."""

    def act(repo: DataRepository):
        branches = repo.list_branches()
        human = "\n".join(
            f"{'*' if b == repo.main_branch else ' '} {b}  {c[:12]}" for b, c in branches.items()
        )
        return {"main": repo.main_branch, "branches": branches}, human

    _run(as_json, act)


@branch_app.command("delete")
def branch_delete(name: str, as_json: JsonOpt = False) -> None:
    """Delete a branch (its commits stay readable by id)."""

    def act(repo: DataRepository):
        head = repo.resolve(name)
        repo.delete_branch(name)
        return {"deleted": name, "commit": head}, f"deleted {name} (was at {head[:12]})"

    _run(as_json, act)


# --------------------------------------------------------------------- history
@app.command()
def commit(
    branch: str,
    message: Annotated[str, typer.Option("--message", "-m", help="commit message")],
    meta: MetaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Commit the staged changes of a branch."""
    metadata = _parse_meta(meta)

    def act(repo: DataRepository):
        cid = repo.commit(branch, message, metadata)
        return {"branch": branch, "commit": cid}, f"{branch} at {cid[:12]}"

    _run(as_json, act)


@app.command()
def log(
    ref: Annotated[str, typer.Argument(help="branch, tag or commit")] = "main",
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="at most this many; 0: all")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Commits reachable from a ref, newest first."""

    def act(repo: DataRepository):
        commits = repo.log(ref, limit=limit or None)
        human = "\n".join(
            f"{c.id[:12]}  {_when(c.created_at)}  {c.message}" + ("  (merge)" if len(c.parents) > 1 else "")
            for c in commits
        )
        return {"ref": ref, "commits": [_commit_dict(c) for c in commits]}, human

    _run(as_json, act)


@app.command()
def diff(left: str, right: str, as_json: JsonOpt = False) -> None:
    """What changes from LEFT to RIGHT (committed content)."""

    def act(repo: DataRepository):
        changes = repo.diff(left, right)
        sign = {"added": "+", "removed": "-", "changed": "~"}
        human = "\n".join(f"{sign[c.type]} {c.path}" for c in changes) or "no changes"
        return {"left": left, "right": right, "changes": [asdict(c) for c in changes]}, human

    _run(as_json, act)


@app.command()
def merge(
    source: str,
    dest: Annotated[str, typer.Argument(help="destination branch")] = "main",
    strategy: Annotated[str, typer.Option(help="on conflict: fail, source-wins or dest-wins")] = "fail",
    message: Annotated[str | None, typer.Option("--message", "-m")] = None,
    meta: MetaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Three-way merge SOURCE into DEST. Exit 1 on conflict (paths listed)."""
    metadata = _parse_meta(meta)

    def act(repo: DataRepository):
        cid = repo.merge(source, dest, message=message, metadata=metadata or None, strategy=strategy)  # type: ignore[arg-type]
        return (
            {"source": source, "dest": dest, "strategy": strategy, "commit": cid},
            f"merged {source} into {dest}: {cid[:12]}",
        )

    _run(as_json, act)


@app.command()
def tag(
    name: Annotated[str | None, typer.Argument(help="tag to create; none: list tags")] = None,
    ref: Annotated[str, typer.Option("--ref", help="what to tag")] = "main",
    as_json: JsonOpt = False,
) -> None:
    """Create a tag at a ref, or list tags."""

    def act(repo: DataRepository):
        if name is None:
            tags = repo.list_tags()
            return {"tags": tags}, "\n".join(f"{t}  {c[:12]}" for t, c in tags.items()) or "no tags"
        cid = repo.create_tag(name, ref)
        return {"tag": name, "ref": ref, "commit": cid}, f"tagged {cid[:12]} as {name}"

    _run(as_json, act)


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="branch, tag or commit")] = "main",
    path: Annotated[str | None, typer.Argument(help="object to show; none: the commit")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write the object's bytes to this file")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a commit, or an object at a ref (its bytes on stdout, or to --out)."""

    def act(repo: DataRepository):
        if path is None:
            c = repo.get_commit(repo.resolve(ref))
            objects = repo.list_objects(c.id)
            human = (
                f"commit {c.id}\nparents {' '.join(c.parents) or '-'}\ndate {_when(c.created_at)}\n"
                + "".join(f"meta {k}={v}\n" for k, v in c.metadata.items())
                + f"\n    {c.message}\n\n{len(objects)} object(s)"
            )
            return {"ref": ref, "commit": _commit_dict(c), "objects": objects}, human
        data = repo.get_object(ref, path)
        info: dict[str, Any] = {
            "ref": ref,
            "path": path,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if out is not None:
            out.write_bytes(data)
            info["out"] = str(out)
            return info, f"wrote {len(data)} bytes to {out}"
        if as_json:
            try:
                info["text"] = data.decode("utf-8")
            except UnicodeDecodeError:
                info["text"] = None  # binary: use --out
        return info, ""

    if path is not None and out is None and not as_json:
        try:
            data = open_configured_repository().get_object(ref, path)
        except (DataRepoError, FileNotFoundError, ValueError) as e:
            _fail(str(e), as_json, type=type(e).__name__)
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    _run(as_json, act)


@app.command()
def fsck(as_json: JsonOpt = False) -> None:
    """Verify every digest and ref of the embedded repository. Exit 1 on problems."""
    problems: list[str] = []

    def act(repo: DataRepository):
        check = getattr(repo, "fsck", None)
        if check is None:
            raise DataRepoError("fsck checks the embedded backend only; lakeFS keeps its own integrity")
        problems.extend(check())
        human = "\n".join(problems) if problems else "repository is consistent"
        return {"ok": not problems, "problems": problems}, human

    _run(as_json, act)
    if problems:
        raise typer.Exit(1)
