"""Benchmarks of the embedded data repository; prints measured figures, asserts nothing.

1. Branch creation time on repositories of two sizes (default ~100 MB and ~1 GB,
   ``--quick``: 10 MB and 100 MB). Target: flat, under 10 ms.
2. Commit time against the number of changed objects, on both repository sizes
   (should follow the change, not the repository size).
3. Writing and reading a 1M-row Parquet through the repository (write, commit,
   read at the commit) against a plain file write and read. Target: ratio
   plain/repository >= 0.8.

    python benchmarks/data_repo.py [--quick] [--dir /fast/disk/tmp]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ratchet.data.repository.embedded import FSYNC_ENV, EmbeddedRepository  # noqa: E402

MB = 1 << 20


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def build_repo(root: Path, size_mb: int, object_mb: int = 4) -> EmbeddedRepository:
    """A repository whose main holds ``size_mb`` of random data in ``object_mb`` objects."""
    repo = EmbeddedRepository.open_or_init(root)
    rng = np.random.default_rng(size_mb)
    for i in range(max(1, size_mb // object_mb)):
        repo.put_object("main", f"data/part-{i:05d}.bin", rng.bytes(object_mb * MB))
    repo.commit("main", f"{size_mb} MB of data")
    return repo


def bench_branches(repo: EmbeddedRepository, n: int = 50) -> float:
    times = []
    for i in range(n):
        times.append(_timed(lambda i=i: repo.create_branch(f"bench-{i}", "main")))
    for i in range(n):
        repo.delete_branch(f"bench-{i}")
    return statistics.median(times)


def bench_commit(repo: EmbeddedRepository, changed: int, tag: str) -> float:
    branch = f"c-{tag}-{changed}"
    repo.create_branch(branch, "main")
    for i in range(changed):
        repo.put_object(branch, f"changes/{tag}/{i:05d}", os.urandom(1024))
    t = _timed(lambda: repo.commit(branch, f"{changed} changes"))
    repo.delete_branch(branch)
    return t


def bench_parquet(
    work: Path, repos: dict[str, EmbeddedRepository], rows: int, rounds: int = 3
) -> dict[str, float]:
    """Median seconds of each way to write then read the same frame."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            **{f"f{i}": rng.normal(size=rows) for i in range(6)},
            "n": rng.integers(0, 1000, size=rows),
            "cat": pd.Categorical(rng.choice(["a", "b", "c", "d"], size=rows)),
            "label": rng.integers(0, 2, size=rows),
        }
    )

    def plain_io(path: Path, durable: bool) -> None:
        df.to_parquet(path, index=False)
        if durable:
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        pd.read_parquet(path)

    def repo_io(repo: EmbeddedRepository, r: int) -> None:
        repo.write_dataframe("main", f"frames/{r}.parquet", df)
        cid = repo.commit("main", f"frame {r}")
        repo.read_dataframe(cid, f"frames/{r}.parquet")

    times: dict[str, list[float]] = {}
    for r in range(rounds):  # interleaved so machine noise hits every variant alike
        times.setdefault("plain", []).append(_timed(lambda r=r: plain_io(work / f"p{r}.parquet", False)))
        times.setdefault("plain+fsync", []).append(_timed(lambda r=r: plain_io(work / f"q{r}.parquet", True)))
        for name, repo in repos.items():
            times.setdefault(name, []).append(_timed(lambda repo=repo, r=r: repo_io(repo, r)))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 MB / 100 MB repositories")
    ap.add_argument("--dir", type=Path, default=None, help="where to build the repositories")
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    sizes = (10, 100) if args.quick else (100, 1000)

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="ratchet-bench-") as tmp:
        work = Path(tmp)
        repos = {}
        for size in sizes:
            build_s = _timed(lambda size=size: repos.__setitem__(size, build_repo(work / f"r{size}", size)))
            print(f"built {size} MB repository in {build_s:.1f} s")

        print("\n== branch creation (median of 50)")
        br = {size: bench_branches(repos[size]) for size in sizes}
        for size in sizes:
            print(f"  {size:>5} MB repository: {br[size] * 1e3:7.3f} ms")
        small, big = sizes
        print(f"  ratio {big} MB / {small} MB: {br[big] / br[small]:.2f} (1.0 = flat; target < 10 ms)")

        print("\n== commit time vs changed objects (1 KB each; puts not timed; median of 3)")
        print(f"  {'changed':>8} " + " ".join(f"{s:>9} MB" for s in sizes))
        per = {}
        for changed in (1, 10, 100, 1000):
            row = [
                statistics.median(bench_commit(repos[s], changed, f"s{s}r{k}") for k in range(3))
                for s in sizes
            ]
            per[changed] = row
            print(f"  {changed:>8} " + " ".join(f"{t * 1e3:9.2f} ms" for t in row))
        print(
            f"  ratio 1000 changes / 1 change: {per[1000][0] / per[1][0]:.1f}x; "
            f"ratio {big} MB / {small} MB repository at 100 changes: {per[100][1] / per[100][0]:.2f}"
        )

        print(f"\n== {args.rows:,}-row Parquet write + read (median of 3)")
        durable = repos[small]
        os.environ[FSYNC_ENV] = "0"
        fast = EmbeddedRepository.open_or_init(work / "nofsync")
        del os.environ[FSYNC_ENV]
        t = bench_parquet(work, {"repo": durable, "repo (RATCHET_DATA_FSYNC=0)": fast}, args.rows)
        print(f"  plain file:                   {t['plain'] * 1e3:8.1f} ms")
        print(f"  plain file + fsync:           {t['plain+fsync'] * 1e3:8.1f} ms")
        print(
            f"  via repository:               {t['repo'] * 1e3:8.1f} ms (write, commit, read at the commit)"
        )
        print(f"  via repository, no fsync:     {t['repo (RATCHET_DATA_FSYNC=0)'] * 1e3:8.1f} ms")
        print(f"  ratio plain/repository:       {t['plain'] / t['repo']:.2f} (target >= 0.8)")
        print(f"  ratio plain+fsync/repository: {t['plain+fsync'] / t['repo']:.2f} (same durability)")
        print(f"  ratio plain/repository, no fsync: {t['plain'] / t['repo (RATCHET_DATA_FSYNC=0)']:.2f}")


if __name__ == "__main__":
    main()
