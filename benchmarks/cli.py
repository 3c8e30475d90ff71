"""How long the ``ratchet`` commands take as a user runs them (fresh processes, end to end),
as ratios against a bare ``python -c "import ratchet"`` run in the same script.

    python benchmarks/cli.py [--repeats 3] [--rows 4000] [--no-up] [--only user,ingest,status,train,up,big,demo]
                             [--big 100000,1000000,2016000,10000000]

``user`` (issue 25), first: what a user meets. A fresh home and an environment with no Prefect
or ratchet variable but ``RATCHET_HOME`` (the built-in config), from a folder outside the
repository: ``init``, then five ``ratchet ingest`` in a row as typed (the first starts the
home's server and warm process; the median of the last three, the lines on stderr, any
"temporary server"); then each command plain (in its own process, ``RATCHET_WARM=0``) and
forwarded (a fork of the warm process), printed side by side.

Rows: ``status``; ``ingest`` of a batch (``--rows``) with Prefect's temporary server per
command (``RATCHET_PREFECT_SERVER=ephemeral``, what every command did before), with the home's
persistent server cold (the first command starts it), with it running (in the command's own
process, ``RATCHET_WARM=0``, and in a fork of the home's warm process), and with ``ratchet up``
running; ``train --trials 1`` and its overhead beyond the fit (the wall time less the
``tune_model`` task run's own time, read from the server); ``ratchet up`` with no server
running and with the home's server running. Medians over ``--repeats`` runs. ``big`` (issue 27):
in a home of its own (schema inferred from a sample of the same shape: 10 columns, 3 of them
text), its server started by a first small ingest, one ``ratchet ingest`` in its own process
(``RATCHET_WARM=0``) each of a CSV batch of ``--big`` rows (generated once into the temporary
folder, a million rows at a time), end to end from the command's start to its exit: rows/s, the
peak RSS of the ingest process (``wait4``) and its CPU seconds (user + system, less sensitive to
a shared machine's load than the wall time); ingest reads, checks, profiles and writes a batch in
chunks of ``data.chunk_rows``. ``--big 100000,1000000`` skips the 10M-row batch (a quick run).
``demo``: ``ratchet --config configs/demo.yaml demo`` (what ``make run`` runs), once, and its
drift onset to a better champion at 100 % traffic.

Targets (issue 17): ingest <= 3 s end to end, status <= 1 s, train --trials 1 <= 3 s beyond
its fit, peak RSS of a 10M-row ingest <= 1.5 GB. Issue 27: a 2,016,000-row batch (``--big
2016000``) in at most 20 s on 2 cores, 100k rows/s end to end. Timings on a shared machine are noisy: the load average is printed with the table.
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

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIG = os.pathsep.join([str(ROOT / "ratchet/configs/ratchet.yaml"), str(ROOT / "configs/test.yaml")])


class Bench:
    def __init__(self, home: Path, rows: int):
        self.home, self.rows, self.batches = home, rows, 0
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RATCHET_"))}
        self.env.update(RATCHET_HOME=str(home), RATCHET_CONFIG=CONFIG, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")

    def run(self, *args: str, mode: str = "persistent", cmd: tuple[str, ...] = (str(BIN / "ratchet"),),
            warm: bool = True) -> tuple[float, str]:
        t0 = time.perf_counter()
        env = {**self.env, "RATCHET_PREFECT_SERVER": mode, **({} if warm else {"RATCHET_WARM": "0"})}
        r = subprocess.run([*cmd, *args], env=env, cwd=self.home.parent, capture_output=True, text=True, timeout=900)
        seconds = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}\n{r.stderr[-3000:]}")
        return seconds, r.stdout

    def run_rss(self, *args: str) -> tuple[float, int, float]:
        """(seconds, peak RSS in bytes, CPU seconds) of one ``ratchet`` command, from its own rusage."""
        t0 = time.perf_counter()
        # in its own process (RATCHET_WARM=0): a warm fork's memory is not the caller's rusage
        p = subprocess.Popen([str(BIN / "ratchet"), *args],
                             env={**self.env, "RATCHET_PREFECT_SERVER": "persistent", "RATCHET_WARM": "0"},
                             cwd=self.home.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: exit {p.returncode}\n{p.stderr.read().decode()[-3000:]}")
        return seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime  # maxrss: kilobytes on Linux

    def big_batch(self, rows: int) -> str:
        """A CSV of ``rows`` rows of ``ten_columns``, written a million rows at a time."""
        path = self.home.parent / f"big-{rows}.csv"
        with open(path, "w") as fh:
            for i, start in enumerate(range(0, rows, 1_000_000)):
                ten_columns(min(1_000_000, rows - start), seed=7_000 + rows % 997 + i).to_csv(
                    fh, index=False, header=i == 0)
        return str(path)

    def allow_big_files(self) -> None:
        """The schema's max_file_mb raised for the big batches (a 10M-row CSV is about 480 MiB)."""
        import yaml

        path = self.home / "schema.yaml"
        schema = yaml.safe_load(path.read_text())
        schema["max_file_mb"] = 8192
        path.write_text(yaml.safe_dump(schema, sort_keys=False))

    def batch(self) -> str:
        from ratchet.demo.synthetic import generate_batch, write_batch

        self.batches += 1
        path = self.home.parent / f"batch-{self.batches:03d}.csv"
        write_batch(generate_batch(0, self.rows, seed=1000 + self.batches), path)
        return str(path)

    def ingest(self, mode: str = "persistent", warm: bool = True) -> float:
        return self.run("ingest", self.batch(), "--json", mode=mode, warm=warm)[0]

    def wait_warm(self, timeout: float = 180.0) -> None:
        """Until the home's warm process takes commands (ratchet_cli/warm.py)."""
        from ratchet.core.settings import Settings
        from ratchet_cli.warm import read_record

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = read_record(Settings(home=self.home))
            if record and Path(record["socket"]).exists():
                return
            time.sleep(0.5)
        raise RuntimeError("the warm process never took commands; see <home>/logs/warm.log")

    def server_api(self) -> str:
        from ratchet.core.settings import Settings
        from ratchet.runtime.stack import prefect_api_url

        return prefect_api_url(Settings(home=self.home))


def ten_columns(rows: int, seed: int):
    """The demo's 9 columns (2 of them text) and a third text column of 40 regions: the issue's
    batch shape, 10 columns, 3 of them text."""
    import numpy as np

    from ratchet.demo.synthetic import generate_batch

    frame = generate_batch(0, rows, seed=seed)
    regions = np.array([f"region_{i:02d}" for i in range(40)])
    frame.insert(8, "region", regions[np.random.default_rng(seed).integers(0, 40, rows)])
    return frame


def big_ingests(tmp: Path, sizes: list[int]) -> list[tuple[str, float, str]]:
    """The ``big`` rows: each size ingested once in its own process in a home of its own."""
    b = Bench(tmp / "big-home", 4000)
    rows = []
    try:
        sample = b.home.parent / "big-sample.csv"
        ten_columns(4000, seed=1).to_csv(sample, index=False)
        b.run("init", "--schema-from", str(sample), "--target", "default", "--json")
        b.allow_big_files()
        small = b.home.parent / "big-first.csv"
        ten_columns(4000, seed=2).to_csv(small, index=False)
        b.run("ingest", str(small), "--json", warm=False)  # starts the home's server
        for size in sizes:
            path = b.big_batch(size)
            seconds, rss, cpu = b.run_rss("ingest", path, "--json")
            Path(path).unlink()
            rows.append((f"ingest of {size:,} rows (10 columns, 3 text)", seconds,
                         f"{size / seconds:,.0f} rows/s; peak RSS {rss / 2**20:.0f} MiB, {rss / size:.0f} B/row; "
                         f"CPU {cpu:.1f} s ({size / cpu:,.0f} rows per CPU-s)"
                         + ("; target <= 1.5 GB" if size >= 10_000_000 else "")
                         + ("; target <= 20 s" if size == 2_016_000 else "")))
            print(f"big: {rows[-1][0]}: {seconds:.1f} s, {rows[-1][2]}", file=sys.stderr, flush=True)
    finally:
        subprocess.run([str(BIN / "ratchet"), "down", "--json"], env=b.env, capture_output=True, timeout=120)
    return rows


def user_session(tmp: Path, rows: int, n: int, commands: list[str]) -> list[str]:
    """The ``user`` table: five ingests in a fresh home, then plain against forwarded per command."""
    b = Bench(tmp / "user-home", rows)
    b.env.pop("RATCHET_CONFIG")  # nothing set but the home: the built-in config

    def timed(*args: str, warm: bool = True) -> tuple[float, subprocess.CompletedProcess]:
        env = b.env if warm else {**b.env, "RATCHET_WARM": "0"}
        t0 = time.perf_counter()
        r = subprocess.run([str(BIN / "ratchet"), *args], env=env, cwd=tmp, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}\n{r.stderr[-3000:]}")
        return time.perf_counter() - t0, r

    def run_command(args: tuple[str, ...], warm: bool = True) -> float:
        """The command's time; ``train``'s new data is ingested first, untimed (so it trains)."""
        if args[0] == "ingest" and len(args) > 2:
            timed(*args[:2], warm=warm)
            args = args[2:]
        return timed(*args, warm=warm)[0]

    out = []
    try:
        sample = b.batch()
        timed("init", "--schema-from", sample, "--target", "default")
        session = [timed("ingest", b.batch()) for _ in range(5)]
        times = [t for t, _ in session]
        temporary = sum("temporary server" in r.stderr for _, r in session)
        lines = max(len(r.stderr.splitlines()) for _, r in session)
        forwarded = sum(1 for line in (b.home / "logs/warm.log").read_text().splitlines() if ": ratchet " in line)
        out.append(f"five `ratchet ingest` of {rows} rows in a fresh home, as typed: "
                   + ", ".join(f"{t:.2f}" for t in times) + f" s; median of the last three {median(times[2:]):.2f} s "
                   f"(target <= 3 s); {forwarded} forwarded; at most {lines} lines on stderr (target <= 5); "
                   f"{temporary} started a temporary server (target 0)")
        b.wait_warm()
        argv = {"ingest": lambda: ("ingest", b.batch()), "train": lambda: ("ingest", b.batch(), "train", "--trials", "1")}
        label = {"ingest": f"ingest ({rows} rows)", "train": "train --trials 1 (after an ingest)"}
        out.append(f"\n| {'command (fresh home, server running)':<40} | {'plain s':>8} | {'forwarded s':>11} | plain / forwarded |")
        out.append(f"|{'-' * 42}|{'-' * 10}|{'-' * 13}|-------------------|")
        for name in commands:
            plain = median([run_command(argv[name](), warm=False) for _ in range(n)])
            warm = median([run_command(argv[name]()) for _ in range(n)])
            out.append(f"| {label[name]:<40} | {plain:8.2f} | {warm:11.2f} | {plain / warm:17.1f} |")
    finally:
        subprocess.run([str(BIN / "ratchet"), "down", "--json"], env=b.env, capture_output=True, timeout=120)
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def tune_seconds(api: str) -> float:
    """The latest ``tune_model`` task run's own time (the search and its fit)."""
    runs = httpx.post(f"{api}/task_runs/filter", json={"sort": "EXPECTED_START_TIME_DESC", "limit": 50}, timeout=10).json()
    tune = next(r for r in runs if r["name"].startswith("tune_model"))
    return float(tune["total_run_time"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--no-up", action="store_true", help="skip the rows that start `ratchet up`")
    ap.add_argument("--only", default="user,ingest,status,train,up,big,demo",
                    help="which rows: user,ingest,status,train,up,big,demo")
    ap.add_argument("--big", default="100000,1000000,2016000,10000000",
                    help="rows of the big batches (100000,1000000: a quick run without the 10M-row one)")
    args = ap.parse_args()
    only = set(args.only.split(","))
    n = args.repeats
    rows: list[tuple[str, float, str]] = []
    user: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-cli-") as tmp:
        if "user" in only:
            user = user_session(Path(tmp), args.rows, n, ["ingest", *(["train"] if "train" in only else [])])
        b = Bench(Path(tmp) / "home", args.rows)
        try:
            baseline = median([b.run("-c", "import ratchet", cmd=(sys.executable,))[0] for _ in range(max(n, 5))])
            first = b.batch()
            b.run("init", "--schema-from", first, "--target", "default", "--json")
            # databases created before timing (and Prefect's temporary server tried, for its row)
            b.run("ingest", first, "--json", mode="ephemeral" if "ingest" in only else "persistent")
            if "ingest" in only:
                rows.append(("ingest, a temporary server per command (before)", median([b.ingest("ephemeral") for _ in range(n)]), ""))
                cold = []
                for _ in range(n):
                    b.run("down", "--json")
                    cold.append(b.ingest())
                rows.append(("ingest, persistent server cold (first command)", median(cold), ""))
                rows.append(("ingest, server running, own process (WARM=0)", median([b.ingest(warm=False) for _ in range(n)]), ""))
                b.wait_warm()
                rows.append(("ingest, server running, warm fork", median([b.ingest() for _ in range(n)]), "target <= 3 s"))
            if "status" in only:
                rows.append(("status", median([b.run("status", "--json")[0] for _ in range(max(n, 5))]), "target <= 1 s"))
                rows.append(("history", median([b.run("history", "--json")[0] for _ in range(max(n, 5))]), ""))
            if "big" in only:
                rows += big_ingests(Path(tmp), [int(x) for x in args.big.split(",") if x])
            walls, overheads = [], []
            if "train" in only:
                b.wait_warm()
            for _ in range(n if "train" in only else 0):
                b.batch()  # new data, so the run trains rather than finding the model it made
                b.ingest()
                wall = b.run("train", "--trials", "1", "--json")[0]
                walls.append(wall)
                overheads.append(wall - tune_seconds(b.server_api()))
            if walls:
                rows.append(("train --trials 1", median(walls), ""))
                rows.append(("  its overhead beyond the fit (tune_model task)", median(overheads), "target <= 3 s"))
            if not args.no_up and "up" in only:
                ups, warm_ups, stacked = [], [], []
                for _ in range(n):
                    b.run("down", "--json")
                    ups.append(b.run("up", "--json")[0])
                    b.wait_warm()
                    stacked.append(b.ingest())  # (its automations start training meanwhile)
                    b.run("down", "--json")
                    b.ingest()  # starts the home's server
                    warm_ups.append(b.run("up", "--json")[0])
                    b.run("down", "--json")
                rows.append(("up, no server running", median(ups), ""))
                rows.append(("up, the home's server running", median(warm_ups), ""))
                rows.append(("ingest, with `ratchet up` running", median(stacked), "target <= 3 s"))
            if "demo" in only:  # what `make run` runs: drift onset to a better champion at 100 %
                env = {**b.env, "RATCHET_HOME": str(Path(tmp) / "demo-home")}
                env.pop("RATCHET_CONFIG")
                t0 = time.perf_counter()
                r = subprocess.run([str(BIN / "ratchet"), "--config", str(ROOT / "configs/demo.yaml"), "demo", "--json"],
                                   env=env, cwd=tmp, capture_output=True, text=True, timeout=1800)
                if r.returncode != 0:
                    raise RuntimeError(f"demo: exit {r.returncode}\n{r.stderr[-3000:]}")
                report = json.loads(r.stdout)
                rows.append(("demo, whole run", time.perf_counter() - t0, ""))
                rows.append(("demo, drift onset to better champion at 100 %", float(report["time_to_recover_s"] or "nan"),
                             "target < 60 s"))
        finally:
            subprocess.run([str(BIN / "ratchet"), "down", "--json"], env=b.env, capture_output=True, timeout=120)
    load = os.getloadavg()
    print(f"ratchet CLI, medians of {n} runs; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{os.cpu_count()} CPUs; batch of {args.rows} rows")
    print(f"baseline `python -c 'import ratchet'`: {baseline:.3f} s\n")
    if user:
        print("\n".join(user) + "\n")
    if rows:
        print(f"| {'command':<50} | {'seconds':>8} | {'x baseline':>10} | note |")
        print(f"|{'-' * 52}|{'-' * 10}|{'-' * 12}|------|")
    for name, seconds, note in rows:
        print(f"| {name:<50} | {seconds:8.2f} | {seconds / baseline:10.1f} | {note} |")
    print(json.dumps({"baseline_s": baseline, "rows": {name: round(s, 3) for name, s, _ in rows}}))


if __name__ == "__main__":
    main()
