"""``ratchet backup OUT.tar.gz`` and ``ratchet restore IN.tar.gz --home NEWHOME``
(``ratchet.runtime.backup``): no Prefect, no model stack; safe while the stack runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ratchet_cli.common import OPTS, JsonOpt, emit, fail, home_settings


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _champions(champion: dict[str, str]) -> str:
    return ", ".join(f"{model} v{version}" for model, version in champion.items()) or "none"


def backup(
    out: Annotated[Path, typer.Argument(metavar="OUT.tar.gz", help="the archive to write (replaced atomically)")],
    as_json: JsonOpt = False,
) -> None:
    """A consistent copy of the home, safe while the stack runs: every SQLite database by
    SQLite's online backup, the data repository at a ref snapshot, artifacts, configs, the
    admin token, and a manifest with each file's SHA-256."""
    from ratchet.runtime.backup import BackupError, backup_home

    try:
        result = backup_home(home_settings(), out)
    except BackupError as e:
        fail(str(e), as_json)
    d = result.to_dict()
    mains = {rel: r["branches"].get("main", "")[:12] for rel, r in result.repositories.items()}
    emit(d, as_json, (
        f"backup {result.archive}: {result.files} files, {_mb(result.bytes)} ({_mb(result.archive_bytes)} compressed) "
        f"in {result.seconds:.1f} s\nchampion {_champions(result.champion)}; ledger {result.ledger_entries} entries; "
        + "; ".join(f"{rel} main {head}" for rel, head in mains.items())
        + "".join(f"\nnot in the archive: {e}" for e in result.external)
    ))


def restore(
    archive: Annotated[Path, typer.Argument(metavar="IN.tar.gz", help="an archive written by ratchet backup")],
    home: Annotated[
        Path | None, typer.Option("--home", metavar="NEWHOME", help="the new home: a folder that is absent or empty")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Unpack a backup into a new home: every file checked against the manifest, the
    databases' paths pointed at the new home."""
    from ratchet.runtime.backup import BackupError, restore_home

    target = home or (Path(OPTS.home) if OPTS.home else None)
    if target is None:
        fail("restore needs --home NEWHOME: the new home to unpack into", as_json)
    try:
        result = restore_home(archive, target)
    except BackupError as e:
        fail(str(e), as_json)
    emit(result.to_dict(), as_json, (
        f"restored {result.files} files ({_mb(result.bytes)}) into {result.home} from the backup of "
        f"{result.source_home} taken {result.created_at}\nchampion {_champions(result.champion)}; ledger "
        f"{result.ledger_entries} entries; paths rewritten: "
        + (", ".join(f"{db} {sum(c.values())}" for db, c in result.rewritten.items()) or "none")
        + f"\nuse it with: ratchet --home {result.home} status"
    ))


app = typer.Typer()
app.command()(backup)
app.command()(restore)
