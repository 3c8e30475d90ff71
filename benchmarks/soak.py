"""Soak: the whole stack run for a while in compressed time, as it would run for months.

``ratchet up`` on a fresh home, then, with only the commands a user would type:

- a batch every ``--batch-every`` seconds (hundreds in an hour), through ``ratchet ingest``;
  drift episodes switch the labelling rule on and off, and some batches are bad (a column
  missing, text in a number column) and must be rejected;
- continuous traffic with feedback (the load generator posts labels back) from the first
  champion on, whose rows follow the rule of the moment;
- ``ratchet gc`` every ``--gc-every`` batches, as its scheduled deployment would, with the
  retention windows compressed from days to a tenth of the run (``SOAK_YAML``, ``prefect_env``).

Each ``--sample-every`` seconds it records the RSS and open descriptors of the service, the
runner (its own, and with the flow runs it spawns) and the Prefect server; the disk use of
the home by part; and the non-2xx responses of that interval. At the end it checks:

- memory and descriptors are flat: growth under 10 % after warm-up (the median of the last
  third of the samples against the median of the first third after warm-up; descriptors may
  also grow by up to 16, the connections of the moment);
- disk grows with the data kept, not with time: what is not kept with the data (the
  repository, the batch reports, the ledger) nor with the versions (the registry) grows by
  under 10 % over the last half, once GC runs (medians of its first and last thirds); the
  growth of its SQLite databases' content is shown beside it (their files also hold free
  pages and the WAL: a high-water mark, see ``databases``);
- the registry grows with the versions, not with time: its bytes per registered version grow
  by under 10 % over the last half (each version keeps a record; GC bounds the models and
  checkpoints to the aliases, the newest ``keep_versions`` and the ledger's champions);
- 0 non-2xx;
- exactly one champion at every ledger entry (replayed: each entry names the champion of
  its moment, and the replay ends on the registry's champion);
- no batch trained twice (no two versions trained on the same data commit);
- at least ``--min-retrains`` retrains;
- no training run waits through another: runs are asked for faster than training, and each
  training that starts supersedes those asked for before it (``SUPERSEDE_S``).

It prints the series and the verdicts, writes ``soak.json`` and ``soak.png`` in ``--out``,
and exits 1 when a verdict fails.

    python benchmarks/soak.py --minutes 60
    python benchmarks/soak.py --minutes 5 --batch-every 10 --sample-every 15   # the test's
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ratchet.core.reclaim import path_bytes

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIGS = [ROOT / "ratchet" / "configs" / "ratchet.yaml", ROOT / "configs" / "test.yaml"]
# compressed time: a retrain every few batches, short canary steps, no long cooldowns
SOAK_YAML = """\
train:
  max_epochs: 3
tune:
  trials: 1
loop:
  debounce_s: 2
  drift_cooldown_s: 10
  monitor_interval_s: 10
  crash_retry_cooldown_s: 10
retention:                  # months of retention, compressed to a tenth of the run
  keep_versions: {keep}
  rejected_branch_age_days: {days}
  profile_age_days: {days}
  grace_minutes: {grace}
  flow_run_age_days: {days}
  log_max_mb: 0.25
"""


def retention_s(minutes: float) -> float:
    """The compressed retention window: a tenth of the run, at least 30 s."""
    return max(30.0, minutes * 6.0)


def keep_versions(minutes: float) -> int:
    """The newest versions kept: a tenth of the run's retrains (about one a minute), 1 to 5."""
    return max(1, min(5, round(minutes / 12)))


def prefect_env(minutes: float) -> dict[str, str]:
    """The Prefect server's own event vacuum (on by default: 7 days, hourly), compressed likewise."""
    window = int(retention_s(minutes))
    return {"PREFECT_SERVER_EVENTS_RETENTION_PERIOD": f"PT{window}S",
            "PREFECT_SERVER_SERVICES_DB_VACUUM_LOOP_SECONDS": str(max(15, window // 4))}


FLAT = 0.10  # the growth allowed after warm-up
FD_SLACK = 16  # descriptors come and go with connections: a leak is more than this, and more than FLAT
# Runs are asked for faster than training here (a batch / 12 s, a drift signal / 10 s in an
# episode), and a training takes longer as its window grows (70 to 120 s): those asked for
# during one training wait, and the next training to start supersedes them. So the queue is
# a training's worth of requests (up to about 20 here), and no run waits through a training:
# none asked for more than this before the running training started is still waiting. Before
# runs superseded each other, the queue grew by about 5 a minute (171 waiting after 34 min).
SUPERSEDE_S = 60


DATA_PARTS = {"data", "reports", "ledger.db"}  # parts of the home kept with the data (the verdicts)
REGISTRY_PARTS = ("mlflow.db", "mlartifacts", "optuna.db")  # kept with the versions (with their -wal, -shm)


# ----------------------------------------------------------------------- the stream
def make_batch(index: int, rows: int, seed: int, drifted: bool, bad: str | None, folder: Path) -> Path:
    """Batch ``index``: the demo's generator, the rule switched by ``drifted``; ``bad`` spoils it."""
    from ratchet.demo.synthetic import generate_batch, write_batch

    df = generate_batch(index, rows, seed, concept_drift_at=0 if drifted else None)
    if bad == "missing":
        df = df.drop(columns=[df.columns[1]])
    elif bad == "text":
        df[df.columns[0]] = "n/a"
    return write_batch(df, folder / f"batch-{index:04d}{'-bad' if bad else ''}.csv")


def plan(n: int, episode: int, bad_every: int) -> list[tuple[bool, str | None]]:
    """Per batch: (drifted, bad kind or None). Episodes alternate the rule every ``episode``
    batches; every ``bad_every``-th batch is bad, of alternating kinds."""
    out = []
    for i in range(n):
        bad = None
        if bad_every and i > 0 and i % bad_every == 0:
            bad = "missing" if (i // bad_every) % 2 else "text"
        out.append(((i // episode) % 2 == 1, bad))
    return out


def traffic_rows(rows: int, seed: int, drifted: bool, path: Path) -> Path:
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch

    df = generate_batch(0, rows, seed + 7919, concept_drift_at=0 if drifted else None)
    labels = df.pop(DEMO_TARGET)
    rows_json = (json.dumps({"row": r, "label": int(y)}) for r, y in zip(df.to_dict("records"), labels, strict=True))
    path.write_text("\n".join(rows_json))
    return path


# ----------------------------------------------------------------------- the readings
def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def children(pid: int) -> list[int]:
    """Every descendant of ``pid``."""
    parents: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(proc.name))
    out, todo = [], [pid]
    while todo:
        for c in parents.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def disk_by_part(home: Path) -> dict[str, int]:
    parts: dict[str, int] = {}
    for child in sorted(home.iterdir()):
        parts[child.name] = path_bytes(child)
    return parts


def waiting_trainings(api: str) -> dict[str, int] | None:
    """Training runs asked for and not started: ``waiting``, and ``stale``, those asked for
    more than ``SUPERSEDE_S`` before the training running now started, which it should have
    superseded (a run's start is on a loaded machine: its first task comes seconds later)."""
    import httpx

    def runs(states: list[str]) -> list[dict]:
        flt = {"flows": {"name": {"any_": ["train"]}}, "flow_runs": {"state": {"type": {"any_": states}}}, "limit": 200}
        return httpx.post(f"{api}/flow_runs/filter", json=flt, timeout=10).raise_for_status().json()

    def at(stamp: str) -> float:
        from datetime import datetime

        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    try:
        waiting, running = runs(["SCHEDULED"]), runs(["RUNNING"])
    except (httpx.HTTPError, ValueError):
        return None
    started = min((at(r["start_time"]) for r in running if r.get("start_time")), default=None)
    stale = 0 if started is None else sum(at(r["created"]) < started - SUPERSEDE_S for r in waiting)
    return {"waiting": len(waiting), "stale": stale}


def databases(home: Path) -> dict[str, dict[str, int]]:
    """Each SQLite database of the home: ``file`` (with its WAL and shared memory) and ``live``,
    the bytes its content takes (its pages less the free ones, as a reader sees it). SQLite
    reuses the pages deleted rows free, and its WAL file keeps the size of its largest burst:
    both are a high-water mark that a database of bounded content reaches and stays at, while
    ``live`` grows only with what is kept."""
    import contextlib
    import sqlite3

    out = {}
    for db in sorted([*home.glob("*.db"), *home.glob("*/*.db")]):
        files = sum(p.stat().st_size for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
                pages, free, size = (c.execute(f"pragma {p}").fetchone()[0]
                                     for p in ("page_count", "freelist_count", "page_size"))
        except sqlite3.Error:
            continue
        out[str(db.relative_to(home))] = {"file": files, "live": (pages - free) * size}
    return out


def registered(home: Path) -> int | None:
    """Model versions in the registry (MLflow's database, read only)."""
    import contextlib
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{home / 'mlflow.db'}?mode=ro", uri=True, timeout=5)) as c:
            return int(c.execute("select count(*) from model_versions").fetchone()[0])
    except sqlite3.Error:
        return None


def sample(home: Path, t: float, non_2xx: int, requests: int) -> dict[str, Any]:
    stack = json.loads((home / "run" / "stack.json").read_text())
    procs = {name: p["pid"] for name, p in stack["processes"].items()}
    try:  # `ratchet up` runs the runner under a supervisor: stack.json names the supervisor
        procs["supervisor"], procs["runner"] = procs["runner"], json.loads((home / "run" / "runner.json").read_text())["pid"]
    except (FileNotFoundError, ValueError, KeyError):
        pass
    row: dict[str, Any] = {"t": round(t, 1), "non_2xx": non_2xx, "requests": requests, "rss_mib": {}, "fds": {}}
    for name, pid in procs.items():
        row["rss_mib"][name] = rss_mib(pid)
        row["fds"][name] = fds(pid)
    runner = procs.get("runner")
    if runner is not None:  # with the flow runs it has spawned at this moment
        kids = [rss_mib(c) or 0.0 for c in children(runner)]
        row["rss_mib"]["runner+runs"] = (row["rss_mib"]["runner"] or 0.0) + sum(kids)
    row["disk"], row["databases"], row["versions"] = disk_by_part(home), databases(home), registered(home)
    return row


def responses(results: list[dict]) -> tuple[int, int]:
    """(non-2xx, all) of the service's answers in the load generator's results: predictions
    and the feedback posted back."""
    non_2xx = sum(r["non_2xx"] + r["feedback_non_2xx"] for r in results)
    return non_2xx, sum(r["requests"] + sum(r["feedback_statuses"].values()) for r in results)


def serving(url: str) -> bool:
    """The service holds a champion: traffic before the first one would only count 503s."""
    import httpx

    try:
        return bool(httpx.get(f"{url}/health", timeout=5).json().get("ready"))
    except (httpx.HTTPError, ValueError):
        return False


# ----------------------------------------------------------------------- the verdicts
def thirds(values: list[float], warmup: int) -> tuple[float, float] | None:
    """Medians of the first and the last third, after warm-up."""
    v = [x for x in values[warmup:] if x is not None]
    if len(v) < 3:
        return None
    third = max(1, len(v) // 3)
    return statistics.median(v[:third]), statistics.median(v[-third:])


def growth(values: list[float], warmup: int) -> float | None:
    """Median of the last third against the median of the first third, after warm-up."""
    ends = thirds(values, warmup)
    if ends is None:
        return None
    first, last = ends
    return (last - first) / first if first else 0.0


def replay_champions(entries: list[dict[str, Any]]) -> tuple[str | None, list[str]]:
    """Walk the ledger: the champion after each entry, and every entry that disagrees with it."""
    champion: str | None = None
    bad: list[str] = []
    for e in entries:
        a, src, dst = e["action"], e.get("from_version"), e.get("to_version")
        moves = a == "promote" or (a == "rollback" and e.get("traffic") == 1.0)
        if moves:
            if champion is not None and src != champion:
                bad.append(f"#{e['id']} {a} from v{src} while v{champion} was champion")
            champion = dst
        elif a == "traffic" and champion is not None and src != champion:
            bad.append(f"#{e['id']} traffic from v{src} while v{champion} was champion")
        elif a in ("rollback", "inconclusive", "abort", "superseded") and champion is not None \
                and dst not in (None, champion):
            bad.append(f"#{e['id']} {a} back to v{dst} while v{champion} was champion")
    return champion, bad


def verdicts(samples: list[dict], history: list[dict], status: dict, versions: list[dict],
             rejected: int, expected_bad: int, min_retrains: int, gc_ran: bool) -> dict[str, dict]:
    warmup = max(1, len(samples) // 5)
    out: dict[str, dict] = {}
    for kind in ("rss_mib", "fds"):
        for name in sorted({k for s in samples for k in s[kind]}):
            if name == "runner+runs":
                continue  # flow runs come and go: shown, not judged
            values = [s[kind].get(name) for s in samples]
            g, ends = growth(values, warmup), thirds(values, warmup)
            ok = g is not None and g < FLAT
            if kind == "fds" and ends is not None:  # a few sockets more is not a leak
                ok = ok or ends[1] - ends[0] <= FD_SLACK
            out[f"{kind} {name} flat"] = {"ok": ok, "value": None if g is None else f"{g:+.1%}"}
    # Kept with the data, one per batch or decision: the repository, the batches' audit reports,
    # the ledger. Kept with the versions, one record per version (its run, metrics, plots and
    # study) and a model per champion of the ledger: the registry, judged per version. GC and
    # the compressed windows bound the rest. Databases count by their content; their files'
    # high-water mark (free pages, the WAL) is shown beside it.
    def part(name: str) -> str:
        if name in DATA_PARTS:
            return "data"
        return "registry" if name.startswith(REGISTRY_PARTS) else "rest"

    def bytes_of(s: dict, group: str, live: bool = True) -> int:
        dbs = [d for name, d in s.get("databases", {}).items() if part(Path(name).parts[0]) == group]
        files = sum(v for k, v in s["disk"].items() if part(k) == group)
        return files - sum(d["file"] for d in dbs) + sum(d["live"] for d in dbs) if live else files

    def last_half(values: list[float | None]) -> float | None:
        """Over the last half of the run (GC and the windows at work): the median of its last
        third against that of its first. Medians, not the ends: GC's sawtooth (a profile
        window, a version, what one collection frees) would decide between two end points."""
        return growth(values[len(values) // 2:], 0)

    g_files, g = last_half([bytes_of(s, "rest", False) for s in samples]), last_half([bytes_of(s, "rest") for s in samples])
    data_g = [s["disk"].get("data", 0) for s in samples]
    out["disk grows with data, not time"] = {
        "ok": g_files is not None and g_files < FLAT and gc_ran,
        "value": None if g_files is None else f"the rest {g_files:+.1%} over the last half (its databases' content "
                                              f"{g:+.1%}); data {data_g[0]} -> {data_g[-1]} B" + ("" if gc_ran else "; gc never ran")}
    per_version = [bytes_of(s, "registry") / s["versions"] if s.get("versions") else None for s in samples]
    g = last_half(per_version)
    out["registry grows with versions, not time"] = {
        "ok": g is not None and g < FLAT,
        "value": None if g is None else f"bytes per version {g:+.1%} over the last half; "
                                        f"{samples[len(samples) // 2].get('versions')} -> {samples[-1].get('versions')} versions"}
    non_2xx = sum(s["non_2xx"] for s in samples)
    out["0 non-2xx"] = {"ok": non_2xx == 0, "value": f"{non_2xx} of {sum(s['requests'] for s in samples)}"}
    last, bad = replay_champions(history)
    out["one champion at every ledger entry"] = {
        "ok": not bad and last == status.get("champion"), "value": f"replayed v{last}, registry v{status.get('champion')}"
        + (f"; {bad[:3]}" if bad else "")}
    commits = [v["tags"].get("data_commit") for v in versions if v["tags"].get("data_commit")]
    twice = sorted({c for c in commits if commits.count(c) > 1})
    out["no batch trained twice"] = {"ok": not twice, "value": f"{len(commits)} versions, repeated commits: {twice}"}
    out[f"at least {min_retrains} retrains"] = {"ok": len(versions) >= min_retrains, "value": len(versions)}
    queue = [s["waiting_trainings"] for s in samples if s.get("waiting_trainings")]
    stale = max((q["stale"] for q in queue), default=None)
    out["no training run waits through another"] = {
        "ok": bool(queue) and stale == 0,
        "value": f"{stale} stale at most; waiting at most {max((q['waiting'] for q in queue), default=None)}, "
                 f"median {statistics.median([q['waiting'] for q in queue]) if queue else None}"}
    out["bad batches rejected"] = {"ok": rejected == expected_bad, "value": f"{rejected} of {expected_bad}"}
    return out


# ----------------------------------------------------------------------- the run
class Soak:
    def __init__(self, home: Path, configs: list[Path], minutes: float):
        self.home = home
        self.env = {**os.environ, "RATCHET_HOME": str(home), "RATCHET_CONFIG": os.pathsep.join(map(str, configs)),
                    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **prefect_env(minutes)}
        self.env.pop("PREFECT_API_URL", None)
        self.env.pop("RATCHET_PREFECT_SERVER", None)  # the stack's own server, not a temporary one

    def ratchet(self, *args: str, check: bool = True, timeout: float = 600) -> tuple[int, dict]:
        r = subprocess.run([str(BIN / "ratchet"), *args, "--json"], env=self.env, capture_output=True, text=True,
                           timeout=timeout, cwd=self.home.parent)
        if check and r.returncode != 0:
            raise SystemExit(f"ratchet {' '.join(args)} exited {r.returncode}: {r.stderr.strip()[-800:]}")
        try:
            out = json.loads(r.stdout or "{}")
            return r.returncode, out if r.returncode == 0 else {**out, "stderr": r.stderr[-800:]}
        except ValueError:
            return r.returncode, {"output": r.stdout[-800:], "error": r.stderr[-800:]}

    def load(self, url: str, rows: Path, seconds: float, out: Path, seed: int) -> subprocess.Popen:
        """A segment of traffic; ``<out>.stop`` ends it early, its responses counted (``--out``)."""
        return subprocess.Popen(
            [sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--rows", str(rows), "--connections", "2",
             "--rate", "20", "--duration", str(seconds), "--feedback", "0.5", "--seed", str(seed), "--out", str(out),
             "--stop-file", f"{out}.stop"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def versions(self) -> list[dict]:
        code = ("import json; from ratchet.runtime.context import load_context; c = load_context(); "
                "print(json.dumps([{'version': v.version, 'tags': dict(v.tags)} for v in "
                "c.registry.client.search_model_versions(f\"name = '{c.cfg.model_name}'\")]))")
        r = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, cwd=ROOT)
        return json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else []


def run(args: argparse.Namespace) -> int:
    work = Path(args.out or tempfile.mkdtemp(prefix="ratchet-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    override = work / "soak.yaml"
    window = retention_s(args.minutes)
    override.write_text(SOAK_YAML.format(days=window / 86400, grace=min(2.0, window / 120),
                                        keep=keep_versions(args.minutes)))
    soak = Soak(work / "home", [*CONFIGS, override], args.minutes)
    n = max(2, int(args.minutes * 60 / args.batch_every))
    schedule = plan(n, args.episode, args.bad_every)
    incoming = work / "incoming"
    first = make_batch(0, args.rows, args.seed, False, None, incoming)
    soak.ratchet("init", "--schema-from", str(first), "--target", "default")
    _, up = soak.ratchet("up", timeout=300)
    url, api = up["service_url"], up["prefect_api_url"]
    has_gc = subprocess.run([str(BIN / "ratchet"), "gc", "--help"], env=soak.env, capture_output=True).returncode == 0
    print(f"soak: {args.minutes} min, {n} batches (a batch / {args.batch_every} s), home {soak.home}; "
          f"gc {f'every {args.gc_every} batches' if has_gc else 'not available'}", flush=True)

    samples: list[dict] = []
    rejected = gc_runs = 0
    gc_freed: dict[str, int] = {}  # bytes per part, over every collection
    gc_failures: list[str] = []
    t0 = time.monotonic()
    next_batch = next_sample = t0
    i, seg, load, load_out, drifted_now = 0, 0, None, None, None
    try:
        while time.monotonic() - t0 < args.minutes * 60 or i < 2:
            now = time.monotonic()
            if i < n and now >= next_batch:
                drifted, bad = schedule[i]
                path = first if i == 0 else make_batch(i, args.rows, args.seed, drifted, bad, incoming)
                code, _ = soak.ratchet("ingest", str(path), check=bad is None)
                rejected += int(bad is not None and code != 0)
                if has_gc and i and i % args.gc_every == 0:
                    code, out = soak.ratchet("gc", check=False)
                    gc_runs += 1
                    if code != 0:
                        gc_failures.append(f"batch {i}: exit {code}: {out.get('error')} {out.get('stderr')}"[-600:])
                    else:  # a part that had to stop early says why (the next collection goes on)
                        for name, part in out["parts"].items():
                            gc_freed[name] = gc_freed.get(name, 0) + part["bytes"]
                        gc_failures += [f"batch {i}: {name} {part['skipped']}" for name, part in out["parts"].items()
                                        if part["skipped"] and "no Prefect server" not in part["skipped"]]
                i += 1
                next_batch = t0 + i * args.batch_every
            if load is not None and load.poll() is None and drifted_now != schedule[min(i, n) - 1][0]:
                Path(f"{load_out}.stop").touch()  # the rule changed: traffic follows it from now on
            if (load is None or load.poll() is not None) and (load is not None or serving(url)):
                drifted_now = schedule[min(i, n) - 1][0]
                rows = traffic_rows(400, args.seed + seg, drifted_now, work / f"traffic-{seg % 2}.jsonl")
                load_out = work / f"load-{seg}.json"
                load = soak.load(url, rows, args.sample_every, load_out, args.seed + seg)
                seg += 1
            if now >= next_sample and samples is not None:
                done = sorted(work.glob("load-*.json"))
                results = [json.loads(p.read_text()) for p in done]
                for p in done:
                    p.unlink()
                s = sample(soak.home, now - t0, *responses(results))
                s["batches"], s["rejected"], s["waiting_trainings"] = i, rejected, waiting_trainings(api)
                samples.append(s)
                print(json.dumps(s), flush=True)
                next_sample = now + args.sample_every
            time.sleep(0.5)
        if load is not None:
            load.wait(timeout=args.sample_every + 30)
        # the last segment's responses count too
        non_2xx, requests = responses([json.loads(p.read_text()) for p in sorted(work.glob("load-*.json"))])
        samples[-1]["non_2xx"] += non_2xx
        samples[-1]["requests"] += requests
        _, history = soak.ratchet("history")
        _, status = soak.ratchet("status")
        versions = soak.versions()
    finally:
        if load is not None and load.poll() is None:
            load.terminate()
        soak.ratchet("down", check=False, timeout=180)

    expected_bad = sum(1 for d, b in schedule[:i] if b)
    v = verdicts(samples, history.get("entries", []), status, versions, rejected, expected_bad,
                 args.min_retrains, gc_runs > 0)
    v["every gc ran through"] = {"ok": gc_runs > 0 and not gc_failures,
                                 "value": f"{gc_runs - len(gc_failures)} of {gc_runs}" + (f"; {gc_failures[:2]}" if gc_failures else "")}
    print(f"gc freed {sum(gc_freed.values()) / 2**20:.1f} MiB in {gc_runs} runs: "
          + ", ".join(f"{k} {b / 2**20:.2f}" for k, b in gc_freed.items()))
    report = {"minutes": args.minutes, "batches": i, "gc_runs": gc_runs, "gc_failures": gc_failures, "gc_freed": gc_freed,
              "samples": samples, "verdicts": v}
    (work / "soak.json").write_text(json.dumps(report, indent=2))
    plot(samples, work / "soak.png")
    print("\nverdict                                  ok     value")
    for name, r in v.items():
        print(f"{name:40s} {'yes' if r['ok'] else 'NO':6s} {r['value']}")
    print(f"\nseries and verdicts: {work / 'soak.json'}; plot: {work / 'soak.png'}")
    return 0 if all(r["ok"] for r in v.values()) else 1


def plot(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] / 60 for s in samples]
    fig, axes = plt.subplots(5, 1, figsize=(9, 13), sharex=True)
    for name in sorted({k for s in samples for k in s["rss_mib"]}):
        axes[0].plot(t, [s["rss_mib"].get(name) for s in samples], label=name)
    axes[0].set_ylabel("RSS (MiB)")
    for name in sorted({k for s in samples for k in s["fds"]}):
        axes[1].plot(t, [s["fds"].get(name) for s in samples], label=name)
    axes[1].set_ylabel("open descriptors")
    for part in sorted({k for s in samples for k in s["disk"]}):
        axes[2].plot(t, [s["disk"].get(part, 0) / 2**20 for s in samples], label=part)
    axes[2].set_ylabel("home disk (MiB)")
    axes[3].bar(t, [s["non_2xx"] for s in samples], width=0.1, color="tab:red")
    axes[3].set_ylabel("non-2xx / interval")
    axes[4].step(t, [(s.get("waiting_trainings") or {}).get("waiting") for s in samples], where="post")
    axes[4].set_ylabel("waiting trainings")
    axes[4].set_xlabel("minutes")
    for ax in axes[:3]:
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--batch-every", type=float, default=12.0, help="seconds between batches")
    p.add_argument("--sample-every", type=float, default=60.0, help="seconds between readings")
    p.add_argument("--rows", type=int, default=600, help="rows per batch")
    p.add_argument("--episode", type=int, default=40, help="batches per drift episode")
    p.add_argument("--bad-every", type=int, default=17, help="every N-th batch is bad")
    p.add_argument("--gc-every", type=int, default=25, help="ratchet gc every N batches")
    p.add_argument("--min-retrains", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", help="folder for the home, the batches and the results (default: a temporary one)")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
