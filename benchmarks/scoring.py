"""Batch scoring: the score flow's core against the pyfunc's ``predict`` on the whole frame.

A real ratchet model (ColumnTransformer + Lightning MLP, fitted on the synthetic stream) saved
as the MLflow pyfunc ``ratchet train`` logs. Two measurements:

* **throughput**: rows/s of ``ratchet.serving.scoring.score_chunks`` (chunks of ``--chunk-rows``,
  predictions written to Parquet with row ids, version and data commit; with and without the
  whylogs profile of the predictions, as ``ratchet score`` runs it) against
  ``mlflow.pyfunc.load_model(...).predict(frame)`` on the whole frame in memory (nothing
  written). Both read the same frame already in memory; best of ``--repeats``. Target: the
  core with its profile (what ``ratchet score`` does) >= 0.9x the pyfunc.
* **peak memory**: a fresh subprocess per case reads a Parquet file of N rows (100k and 1M)
  and scores it, reporting its peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``): the
  core streams the file in chunks; the baseline reads the whole file and calls the pyfunc.

    python benchmarks/scoring.py [--rows 200000] [--chunk-rows 100000] [--repeats 5]
                                 [--memory-rows 100000,1000000] [--no-memory]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_model(where: Path) -> Path:
    """Fit the small model on the synthetic stream and save it as the pyfunc; its folder."""
    import mlflow.pyfunc

    from ratchet.core.config import TrainConfig
    from ratchet.data.schema_inference import infer_schema
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
    from ratchet.training.model.fit import fit
    from ratchet.training.model.pyfunc import RatchetPyfunc

    df = generate_batch(0, 3000, seed=3)
    schema = infer_schema(df, DEMO_TARGET)
    result = fit(df.iloc[:2400], df.iloc[2400:], schema, TrainConfig(max_epochs=2), progress=False)
    pkl = result.predictor.save(where / "predictor.pkl")
    model_dir = where / "pyfunc"
    mlflow.pyfunc.save_model(str(model_dir), python_model=RatchetPyfunc(), artifacts={"predictor": str(pkl)})
    return model_dir


def frame(rows: int):
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch

    return generate_batch(1, rows, seed=5).drop(columns=[DEMO_TARGET])


def load(model_dir: Path):
    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    predictor = pyfunc.unwrap_python_model().predictor
    predictor.version = "1"
    return pyfunc, predictor


def chunks_of(df, n: int):
    for i in range(0, len(df), n):
        yield df.iloc[i:i + n]


def throughput(model_dir: Path, rows: int, chunk_rows: int, repeats: int, work: Path) -> dict:
    import torch

    from ratchet.serving.scoring import score_chunks

    torch.set_num_threads(1)  # as the service runs (serving.torch_threads); steadier on a shared machine
    pyfunc, predictor = load(model_dir)
    df = frame(rows)
    pyfunc.predict(df.head(1000))  # warm both paths
    best = {"pyfunc predict (whole frame)": float("inf"), "score core, profile off": float("inf"),
            "score core, whylogs profile": float("inf")}
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = pyfunc.predict(df)
        best["pyfunc predict (whole frame)"] = min(best["pyfunc predict (whole frame)"], time.perf_counter() - t0)
        assert len(out) == rows
        for key, prof in (("score core, profile off", False), ("score core, whylogs profile", True)):
            t0 = time.perf_counter()
            n, _, _ = score_chunks(predictor, chunks_of(df, chunk_rows), "1", "bench", work / "p.parquet",
                                   profile=prof, say=lambda _m: None)
            best[key] = min(best[key], time.perf_counter() - t0)
            assert n == rows
    return {k: rows / v for k, v in best.items()}


def _peak_mib() -> float:
    """This process's peak RSS: ``VmHWM`` (Linux; ``ru_maxrss`` keeps the forking parent's peak
    across exec, so it would report the benchmark's own frame), else ``getrusage``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, path: str, model_dir: str, chunk_rows: int) -> None:
    """One memory case in this fresh process: print the peak RSS (MiB) and the rows scored."""
    import pandas as pd

    from ratchet.serving.scoring import ScoringInput, iter_chunks, score_chunks

    pyfunc, predictor = load(Path(model_dir))
    base = _peak_mib()
    if mode == "core":
        src = ScoringInput("file", "bench", [path])
        n, _, _ = score_chunks(predictor, iter_chunks(None, src, chunk_rows), "1", "bench",
                               Path(path).with_suffix(".out.parquet"), say=lambda _m: None)
    else:
        n = len(pyfunc.predict(pd.read_parquet(path)))
    print(json.dumps({"rows": n, "peak_rss_mib": _peak_mib(), "model_loaded_rss_mib": base}))


def memory(model_dir: Path, sizes: list[int], chunk_rows: int, work: Path) -> list[dict]:
    out = []
    for rows in sizes:
        path = work / f"in-{rows}.parquet"
        frame(rows).to_parquet(path, index=False, row_group_size=100_000)  # iter_batches reads a row group at a time
        for mode in ("core", "whole"):
            r = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(path), str(model_dir), "--chunk-rows", str(chunk_rows)],
                capture_output=True, text=True, check=True, cwd=ROOT,
            )
            out.append({"mode": mode, **json.loads(r.stdout.strip().splitlines()[-1])})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--memory-rows", default="100000,1000000")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "PARQUET", "MODEL_DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.chunk_rows)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = build_model(work)
        rates = throughput(model_dir, args.rows, args.chunk_rows, args.repeats, work)
        base = rates["pyfunc predict (whole frame)"]
        print(f"throughput, {args.rows} rows, chunks of {args.chunk_rows}, best of {args.repeats}:")
        for k, v in rates.items():
            print(f"  {k:<30} {v:>12,.0f} rows/s   {v / base:5.2f}x")
        ratio = rates["score core, whylogs profile"] / base
        print(f"  ratio: score core (whylogs profile, as `ratchet score`) / pyfunc: {ratio:.2f}x "
              f"(target >= 0.9x): {'OK' if ratio >= 0.9 else 'BELOW'}")
        if args.no_memory:
            return
        sizes = [int(s) for s in args.memory_rows.split(",") if s]
        print("peak RSS of a fresh process scoring a Parquet file (model loaded first):")
        for r in memory(model_dir, sizes, args.chunk_rows, work):
            label = "score core (chunks)" if r["mode"] == "core" else "pyfunc, whole frame"
            print(f"  {r['rows']:>9} rows  {label:<22} peak {r['peak_rss_mib']:8.0f} MiB, "
                  f"{r['peak_rss_mib'] - r['model_loaded_rss_mib']:7.0f} MiB over the loaded model")


if __name__ == "__main__":
    main()
