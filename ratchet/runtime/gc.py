"""``ratchet gc`` and the ``gc/scheduled`` deployment: retention over the whole home.

Four parts, in this order (config: ``retention``):

1. ``rejected_branches``: rejected ingest branches past ``rejected_branch_age_days``, their
   reports kept in ``<home>/reports/rejected/`` (``ratchet.data.gc``);
2. ``repository``: the embedded repository's unreachable files (``ratchet.data.gc``). Roots:
   every branch and tag, and the data commits named by the ledger and by registered versions;
3. ``versions``: artifacts and checkpoints of versions neither champion, challenger nor
   previous, nor a champion in the ledger (``keep_ledger_versions: all``: nor named by any
   ledger entry), beyond the newest ``keep_versions`` (``ratchet.training.retention``); a
   champion of the ledger kept for that alone keeps its model, not its checkpoints;
4. ``profiles``: live profile windows (``<home>/serving/profiles/<version>/<start>.bin``)
   that started more than ``profile_age_days`` ago;
5. ``flow_runs``: Prefect flow runs that ended more than ``flow_run_age_days`` ago, with their
   task runs, states and logs (the Prefect server's ``bulk_delete``; skipped with no server).
   Prefect's own vacuum service could do it, but it refuses a retention under an hour, and a
   soak in compressed time needs minutes; its events are left to that service (``server_env``);
6. ``logs``: the stack's process logs (``<home>/logs/*.log``) over ``log_max_mb``, cut in place
   to their newest half (the processes append, so they keep writing at the new end).

Nothing reachable from a branch, tag, alias or ledger entry is removed. Each part reports the
bytes it freed; a dry run reports what it would free and removes nothing. Plain Python: the
command works with no Prefect server (a full disk is when it is needed most); the Prefect
part talks to the server's REST API over HTTP when one is named.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ratchet.core.reclaim import Reclaimed, remove_path
from ratchet.core.settings import prefect_api_headers
from ratchet.data import gc as data_gc
from ratchet.runtime.context import Context
from ratchet.training import retention

DAY_S = 86400.0
CHAMPION_ACTIONS = ("promote", "rollback")  # a ledger entry whose to_version became champion


@dataclass
class GcResult:
    dry_run: bool
    parts: list[Reclaimed] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def bytes_freed(self) -> int:
        return sum(p.bytes for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "bytes_freed": self.bytes_freed, "seconds": round(self.seconds, 3),
                "parts": {p.part: p.to_dict() for p in self.parts}}


def ledger_references(ctx: Context) -> tuple[set[str], set[str]]:
    """(data commits, versions) the ledger names; versions as ``keep_ledger_versions`` says."""
    commits: set[str] = set()
    versions: set[str] = set()
    every = ctx.cfg.retention.keep_ledger_versions == "all"
    url = ctx.settings.ledger
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return commits, versions  # no ledger yet (none is created for nothing)
    for e in ctx.ledger.history():
        if e.data_commit:
            commits.add(e.data_commit)
        if every:
            versions |= {v for v in (e.from_version, e.to_version) if v}
        elif e.action in CHAMPION_ACTIONS and e.to_version:
            versions.add(e.to_version)
    return commits, versions


def data_roots(ctx: Context) -> set[str]:
    """Data commits to keep besides branches and tags: the ledger's, and every registered
    version's (its lineage names it), removed artifacts or not."""
    commits, _ = ledger_references(ctx)
    return commits | {c for c in retention.version_data_commits(ctx.registry) if c}


def prune_rejected_branches(ctx: Context, dry_run: bool = False) -> Reclaimed:
    return data_gc.prune_rejected_branches(
        ctx.repo, ctx.settings.reports_dir / "rejected", ctx.cfg.retention.rejected_branch_age_days, dry_run=dry_run
    )


def prune_repository(ctx: Context, dry_run: bool = False, without_branches: list[str] | None = None) -> Reclaimed:
    """``without_branches``: the branches a dry run of the first part would have deleted."""
    return data_gc.prune_unreachable(
        ctx.repo, extra_roots=data_roots(ctx), without_branches=without_branches or (),
        grace_s=ctx.cfg.retention.grace_minutes * 60, dry_run=dry_run,
    )


def prune_versions(ctx: Context, dry_run: bool = False) -> Reclaimed:
    _, protect = ledger_references(ctx)
    return retention.prune_versions(
        ctx.registry, ctx.settings.checkpoints_dir, ctx.cfg.retention.keep_versions, protect, dry_run=dry_run
    )


def window_start(name: str) -> float | None:
    """Unix start of a profile window file (``20260101T030000Z.bin``, ``...bin.corrupt-<t>``)."""
    try:
        return float(calendar.timegm(time.strptime(name.split(".bin", 1)[0], "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return None


def prune_profiles(ctx: Context, dry_run: bool = False, now: float | None = None) -> Reclaimed:
    """Profile windows that started before ``profile_age_days`` ago (other files: by mtime)."""
    out = Reclaimed("profiles", dry_run)
    cutoff = (time.time() if now is None else now) - ctx.cfg.retention.profile_age_days * DAY_S
    folder = Path(ctx.settings.serving_dir) / "profiles"
    for f in sorted(folder.glob("*/*")):
        started = window_start(f.name)
        try:
            at = started if started is not None else f.stat().st_mtime
        except FileNotFoundError:
            continue
        if at < cutoff and f.is_file():
            out.add("windows", remove_path(f, dry_run))
    return out


TERMINAL = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"]
BULK = 20  # flow runs per bulk_delete (Prefect takes 50 at most): short transactions on a busy server


def prune_flow_runs(ctx: Context, api_url: str | None, dry_run: bool = False, now: float | None = None) -> Reclaimed:
    """Terminal flow runs that ended before ``flow_run_age_days`` ago, deleted by the Prefect
    server at ``api_url`` (their task runs, states and logs go with them). The database reuses
    the pages it frees, so the part frees no bytes to count: it bounds the growth."""
    out = Reclaimed("flow_runs", dry_run)
    if not api_url:
        out.skipped = "no Prefect server running"
        return out
    import httpx

    cutoff = (time.time() if now is None else now) - ctx.cfg.retention.flow_run_age_days * DAY_S
    before = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(cutoff))
    flt = {"end_time": {"before_": before}, "state": {"type": {"any_": TERMINAL}}}
    api = api_url.rstrip("/")
    with httpx.Client(timeout=60, headers=prefect_api_headers()) as client:
        if dry_run:
            n = client.post(f"{api}/flow_runs/count", json={"flow_runs": flt}).raise_for_status().json()
            out.counts = {"flow runs": int(n)} if n else {}
            return out
        while True:
            try:
                ids = _bulk_delete(client, api, flt)
            except httpx.HTTPError as e:
                # a busy server (SQLite locked by the runs of the moment): what is deleted stays
                # deleted, the rest waits for the next collection; the other parts are not lost
                out.skipped = f"stopped after {out.counts.get('flow runs', 0)} flow runs: {type(e).__name__}: {e}"
                return out
            for _ in ids:
                out.add("flow runs", 0)
            if len(ids) < BULK:
                return out


def _bulk_delete(client, api: str, flt: dict[str, Any], attempts: int = 6) -> list[str]:
    """One batch through ``bulk_delete``, retried with backoff on a server error or timeout
    (0.5 s doubling: about 15 s in all, what a server busy with a burst of runs needs to answer)."""
    import httpx

    for attempt in range(attempts):
        try:
            r = client.post(f"{api}/flow_runs/bulk_delete", json={"flow_runs": flt, "limit": BULK})
            if r.status_code < 500 or attempt == attempts - 1:
                return r.raise_for_status().json().get("deleted", [])
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
        time.sleep(0.5 * 2**attempt)
    return []


def trim_logs(ctx: Context, dry_run: bool = False) -> Reclaimed:
    """Each ``<home>/logs/*.log`` over ``log_max_mb`` keeps its newest half, from a line start."""
    out = Reclaimed("logs", dry_run)
    limit = int(ctx.cfg.retention.log_max_mb * 2**20)
    for log in sorted((Path(ctx.settings.root) / "logs").glob("*.log")):
        try:
            size = log.stat().st_size
        except FileNotFoundError:
            continue
        if size <= limit:
            continue
        keep = _tail(log, limit // 2)
        if not dry_run:
            # rewritten in place, not replaced: the process holds it open in append mode and
            # goes on writing at the new end; a line written meanwhile may be lost, not the log
            with open(log, "r+b") as f:
                f.write(keep)
                f.truncate(len(keep))
        out.add("logs", size - len(keep), log.name)
    return out


def _tail(path: Path, nbytes: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(-nbytes, 2)
        data = f.read()
    cut = data.find(b"\n")
    return data[cut + 1:] if 0 <= cut < len(data) - 1 else data


def run_gc(ctx: Context, dry_run: bool = False, api_url: str | None = None) -> GcResult:
    """Every part, in order (what the ``gc`` flow's tasks do one by one); ``api_url``: the
    Prefect server whose old flow runs go (None: that part is skipped)."""
    t0 = time.perf_counter()
    branches = prune_rejected_branches(ctx, dry_run)
    parts = [branches, prune_repository(ctx, dry_run, branches.items if dry_run else None),
             prune_versions(ctx, dry_run), prune_profiles(ctx, dry_run),
             prune_flow_runs(ctx, api_url, dry_run), trim_logs(ctx, dry_run)]
    return GcResult(dry_run, parts, time.perf_counter() - t0)


def describe(result: dict[str, Any]) -> str:
    """One line per part for people (``ratchet gc`` without ``--json``)."""
    verb = "would free" if result["dry_run"] else "freed"
    lines = [f"{verb} {_size(result['bytes_freed'])} in {result['seconds']:.1f} s"]
    for name, part in result["parts"].items():
        if part["skipped"]:
            lines.append(f"  {name}: skipped ({part['skipped']})")
            continue
        counts = ", ".join(f"{n} {kind}" for kind, n in part["counts"].items()) or "nothing"
        items = f": {', '.join(part['items'][:10])}{' ...' if len(part['items']) > 10 else ''}" if part["items"] else ""
        lines.append(f"  {name}: {_size(part['bytes'])}, {counts}{items}")
    return "\n".join(lines)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
