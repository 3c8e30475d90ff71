"""The same registered model served by ratchet and by ``mlflow models serve``: throughput and latency.

Trains a small model with ratchet's own ``fit`` on the synthetic stream, registers it in a
temporary home (MLflow on SQLite), then on this machine, one after the other, puts the same
load on:

  mlflow      ``mlflow models serve -m models:/<name>/1 --env-manager local`` (uvicorn, 1 worker)
  ratchet     ``python -m ratchet.serving`` with a challenger loaded and a 50 % split (routing on),
              live profiling on (the shipped config), metrics on
  ratchet V2  the same server and rows under the Open Inference Protocol
              (``POST /v2/models/<name>/infer``, a [1, 1] tensor per column)
  bare        a FastAPI endpoint that parses the JSON and returns a constant (the ceiling)

Load: 8 closed-loop keep-alive connections, single-row requests drawn from 256 rows,
``--seconds`` each after a 2 s warm-up on the same connections, the servers interleaved over
``--rounds`` rounds (medians reported), from ``python -m benchmarks.loadgen`` in a process
of its own for every server alike (``--tool wrk`` for wrk, when it is installed). That generator
is built like wrk: asyncio on uvloop, raw HTTP/1.1, every request encoded once: ~0.1 ms of CPU
per request (measured against the bare app: 2,850 req/s for a third of a core). The
thread-per-connection httpx client it replaced spent ~1.1 ms per request (730 req/s for 85 % of
a core) and, on a 2-core machine, took that CPU from the server it measured (bare FastAPI
then showed p99 32 ms, ratchet 35 ms). All three servers are uvicorn from the same environment,
so all get httptools and uvloop. Prints requests/s, p50 and p99 per server and ratchet / mlflow.

Measured on a 2-core machine shared with other work, quiet at the time (median of 2 rounds):

    mlflow models serve                  45 req/s   p50 169 ms   p99 400 ms
    ratchet (routing 50/50, profiling)  2262 req/s   p50 3.1 ms   p99 9.1 ms
    bare FastAPI (no model)             2833 req/s   p50 2.4 ms   p99 7.1 ms

ratchet / mlflow: throughput x50 (target x5); ratchet p99 9.1 ms (target 25 ms; 11.4 ms in an
earlier run). In the canary under load (8 connections, 30 % of answers labelled) ratchet
served 1490 req/s, p99 13 ms, no non-2xx response.

Then a canary under load: with load running from a second process, the challenger (a copy
of the champion) ramps 5-25-50-100 % and is promoted, then a broken challenger (NaN weights)
is ramped and rolled back at its first step; every non-2xx response is counted.

    python benchmarks/serving.py [--seconds 10] [--rounds 2] [--no-bare] [--no-canary] [--no-mlflow] [--keep]
    python benchmarks/serving.py --families mlp,mlp_ple,tabm   # req/s per model family, against the MLP

Per family (issue 23; champion only, 8 connections, 5 s, median of 3 interleaved rounds, 2 cores at a
load average of 8 to 11; every family on the fast path, its forward pass in numpy):

    mlp       2238 req/s  p99 24.0 ms
    mlp_ple   2398 req/s  p99 16.9 ms   x1.07 of mlp
    tabm      2145 req/s  p99 17.5 ms   x0.96 of mlp   (target: >= x0.8)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ratchet.core.files import free_port, stop_process  # noqa: E402

TOKEN = "bench-t0ken"
HOST = "127.0.0.1"
MLFLOW, RATCHET, BARE = "mlflow models serve", "ratchet (routing 50/50, profiling)", "bare FastAPI (no model)"
V2 = "ratchet, Open Inference Protocol (same)"
V2_TYPES = {bool: "BOOL", int: "INT64", float: "FP64", str: "BYTES"}


def v2_body(row: dict) -> str:
    """The same row as an Open Inference Protocol infer request: a [1, 1] tensor per column."""
    return json.dumps({"inputs": [{"name": k, "shape": [1, 1], "datatype": V2_TYPES[type(v)], "data": [v]}
                                  for k, v in row.items()]})


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited ({proc.returncode}); see {log}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not up after {timeout} s; see {log}")


def stop(proc: subprocess.Popen) -> None:
    stop_process(proc)


# ---------------------------------------------------------------- the model
def build_home(home: Path, family: str | None = None) -> tuple[object, list[dict], list[int], dict]:
    """Train and register v1 (champion), v2 (the same model again), v3 (NaN weights); ``family``:
    the model family (``ratchet.training.model.families``; default the plain MLP)."""
    import mlflow
    import torch

    from ratchet.core.config import TrainConfig
    from ratchet.data.schema_inference import infer_schema
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
    from ratchet.runtime.context import load_context
    from ratchet.training.model.fit import fit

    ctx = load_context([str(ROOT / "ratchet" / "configs" / "ratchet.yaml")], home=str(home))
    df = generate_batch(0, 3000, seed=5)
    schema = infer_schema(df, DEMO_TARGET)
    cfg = TrainConfig(max_epochs=5, family=family)
    if family == "tabm":  # the shipped first trial's TabM (ratchet/configs/ratchet.yaml)
        cfg.model_args = {k: ctx.cfg.tune.first_trial[k] for k in ("hidden", "k", "d_embedding", "n_bins")}
    predictor = fit(df.iloc[:2400], df.iloc[2400:], schema, cfg, progress=False).predictor
    example = df.drop(columns=[DEMO_TARGET]).head(5)
    reg = ctx.registry
    reg.activate()
    with mlflow.start_run(run_name="bench-v1"):
        uri = reg.log_predictor(predictor, example)
    v1 = reg.register(uri, {"data_commit": "benchmark"})
    v2 = reg.register(reg.version_info(v1)["source"], {"data_commit": "benchmark", "note": "copy of v1"})
    broken = copy.deepcopy(predictor)
    with torch.no_grad():
        next(iter(broken.module.parameters())).view(-1)[0] = float("nan")  # any family's first weight
    with mlflow.start_run(run_name="bench-v3-nan"):
        uri3 = reg.log_predictor(broken, example)
    v3 = reg.register(uri3, {"data_commit": "benchmark", "note": "NaN weights"})
    reg.set_alias("champion", v1)
    reg.set_alias("challenger", v2)
    traffic = generate_batch(1, 256, seed=5)
    rows = []
    for r in traffic.drop(columns=[DEMO_TARGET]).to_dict(orient="records"):
        rows.append({k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()})
    return ctx, rows, traffic[DEMO_TARGET].astype(int).tolist(), {"v1": v1, "v2": v2, "v3": v3}


# ---------------------------------------------------------------- load
def wrk_load(url: str, bodies: list[str], seconds: float, connections: int, tmp: Path) -> dict:
    script = tmp / "bodies.lua"
    lua_bodies = ",\n".join("[[" + b + "]]" for b in bodies)
    script.write_text(textwrap.dedent("""
        wrk.method = "POST"
        wrk.headers["Content-Type"] = "application/json"
        local bodies = {%s}
        local i = 0
        request = function()
          i = i %% #bodies + 1
          return wrk.format(nil, nil, nil, bodies[i])
        end
    """) % lua_bodies)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60,
    ).stdout

    def ms(label: str) -> float | None:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        return float(m[1]) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m[2]]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": int(total[1]) if total else 0,
        "requests_per_s": float(rps[1]) if rps else 0.0,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non_2xx": (int(non2xx[1]) if non2xx else 0) + (sum(int(x) for x in sock.groups()) if sock else 0),
        "tool": "wrk",
    }


def loadgen_load(url: str, bodies: list[str], seconds: float, connections: int, tmp: Path,
                 warmup: float = 2.0) -> dict:
    """The same load from ``python -m benchmarks.loadgen`` in a process of its own (asyncio
    with uvloop, raw keep-alive HTTP/1.1, requests encoded once: a few per cent of one core at
    these rates), ``warmup`` seconds first on the same connections, not counted."""
    bodies_file, out = tmp / "bodies.jsonl", tmp / "load.json"
    bodies_file.write_text("\n".join(bodies) + "\n")
    out.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--bodies", str(bodies_file),
         "--connections", str(connections), "--duration", str(seconds), "--warmup", str(warmup),
         "--out", str(out)],
        cwd=ROOT, stdout=subprocess.DEVNULL, check=True, timeout=seconds + warmup + 120,
    )
    r = json.loads(out.read_text())
    return {**r, "tool": "benchmarks.loadgen"}


def measure(url: str, bodies: list[str], seconds: float, connections: int, tmp: Path, tool: str) -> dict:
    if tool == "wrk":
        wrk_load(url, bodies, 2, connections, tmp)  # warm-up
        return wrk_load(url, bodies, seconds, connections, tmp)
    return loadgen_load(url, bodies, seconds, connections, tmp)


# ---------------------------------------------------------------- servers
BARE_APP = """
import uvicorn
from fastapi import FastAPI, Request
app = FastAPI()
@app.post("/predict")
async def predict(request: Request):
    body = await request.json()
    return {"predictions": [0], "model_version": "1", "echo": len(body)}
uvicorn.run(app, host="127.0.0.1", port=%d, log_level="warning", access_log=False)
"""


def start(cmd: list[str], env: dict, log: Path, ready_url: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    wait_http(ready_url, proc, log)
    return proc


def canary_under_load(ctx, url: str, rows: list[dict], labels: list[int], versions: dict, tmp: Path) -> dict:
    """Ramp and promote v2, then ramp v3 (broken) and roll it back, under load from a second process."""
    from ratchet.core.config import CanaryConfig
    from ratchet.delivery import rollout
    from ratchet.delivery.admin import AdminClient

    cfg = CanaryConfig(window_s=2.0, min_requests=20, max_window_s=60, poll_s=0.5, min_latency_samples=200,
                       max_p99_ratio=3.0, p99_slack_ms=50, min_prediction_rows=100, min_feedback=50)
    rows_file = tmp / "rows.jsonl"
    rows_file.write_text("\n".join(json.dumps({"row": r, "label": y}) for r, y in zip(rows, labels, strict=True)))
    stop_file, out = tmp / "stop", tmp / "canary-load.json"
    load = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--rows", str(rows_file),
         "--connections", "8", "--duration", "300", "--feedback", "0.3", "--stop-file", str(stop_file),
         "--out", str(out)],
        cwd=ROOT, stdout=subprocess.DEVNULL,
    )
    admin = AdminClient(url, TOKEN)
    reg = ctx.registry
    outcomes = []
    t0 = time.perf_counter()
    try:
        time.sleep(1.0)
        for challenger in (versions["v2"], versions["v3"]):
            reg.set_alias("challenger", challenger)
            monitor = rollout.begin(admin, cfg, reg.alias("champion"), challenger)
            steps = []
            for share in cfg.steps:
                admin.set_traffic(share)
                result = rollout.watch_step(admin, monitor, share)
                rollout.record_step(ctx.ledger, reg.model_name, monitor, result, "benchmark")
                steps.append(result)
                if result.decision != "pass":
                    outcomes.append(rollout.roll_back(admin, reg, ctx.ledger, monitor, result.breaches,
                                                      result.evidence, "benchmark").to_dict())
                    break
            else:
                outcomes.append(rollout.finish(admin, reg, ctx.ledger, monitor, steps, "benchmark").to_dict())
            outcomes[-1]["steps"] = [(s.share, s.decision, round(s.seconds, 1)) for s in steps]
        time.sleep(1.0)
    finally:
        stop_file.touch()
        load.wait(timeout=120)
        admin.close()
    result = json.loads(out.read_text())
    return {"seconds": round(time.perf_counter() - t0, 1), "outcomes": outcomes, "load": result}


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2, help="each server this many times, interleaved")
    ap.add_argument("--no-bare", action="store_true", help="skip the bare FastAPI ceiling")
    ap.add_argument("--no-canary", action="store_true", help="skip the canary-under-load part")
    ap.add_argument("--no-mlflow", action="store_true", help="skip mlflow models serve (ratchet's two protocols only)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    ap.add_argument("--tool", choices=("loadgen", "wrk"), default="loadgen",
                    help="load generator for every server alike (wrk: when installed)")
    ap.add_argument("--families", default="",
                    help="only ratchet's /predict, one server per model family (e.g. mlp,mlp_ple,tabm), interleaved; "
                    "req/s and p99 per family and against the first")
    args = ap.parse_args(argv)
    if args.families:
        return families_main(args, [f for f in args.families.split(",") if f])

    tmp = Path(tempfile.mkdtemp(prefix="ratchet-bench-serving-"))
    home = tmp / "home"
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "RATCHET_HOME": str(home),
        "RATCHET_CONFIG": str(ROOT / "ratchet" / "configs" / "ratchet.yaml"),
        "RATCHET_ADMIN_TOKEN": TOKEN,
        "MLFLOW_TRACKING_URI": f"sqlite:///{(home / 'mlflow.db').resolve()}",
        "WHYLOGS_NO_ANALYTICS": "True",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("RATCHET_API_KEY", None)
    print(f"building a model in {home} ...", flush=True)
    ctx, rows, labels, versions = build_home(home)
    ratchet_bodies = [json.dumps({"row": r}) for r in rows]
    mlflow_bodies = [json.dumps({"dataframe_records": [r]}) for r in rows]
    if args.tool == "wrk" and not shutil.which("wrk"):
        ap.error("wrk is not installed")
    tool = "wrk" if args.tool == "wrk" else "benchmarks.loadgen (asyncio + uvloop, raw HTTP/1.1, own process)"
    print(f"load: {args.connections} closed-loop connections, single-row requests, {args.seconds:.0f} s each "
          f"after a 2 s warm-up, {tool}\n")

    procs: list[subprocess.Popen] = []
    try:
        import httpx

        targets: dict[str, tuple[str, list[str]]] = {}
        if not args.no_mlflow:
            port = free_port()
            procs.append(start(
                [str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/{ctx.cfg.model_name}/{versions['v1']}",
                 "--env-manager", "local", "-h", HOST, "-p", str(port)],
                env, tmp / "mlflow.log", f"http://{HOST}:{port}/ping",
            ))
            targets[MLFLOW] = (f"http://{HOST}:{port}/invocations", mlflow_bodies)
        port = free_port()
        procs.append(start([sys.executable, "-m", "ratchet.serving", "--port", str(port)], env,
                           tmp / "ratchet.log", f"http://{HOST}:{port}/ready"))
        url = f"http://{HOST}:{port}"
        targets[RATCHET] = (f"{url}/predict", ratchet_bodies)
        # the same rows, the same server, under the Open Inference Protocol (target: >= 0.8x /predict's req/s)
        targets[V2] = (f"{url}/v2/models/{ctx.cfg.model_name}/infer", [v2_body(r) for r in rows])
        admin_headers = {"Authorization": f"Bearer {TOKEN}"}
        httpx.put(f"{url}/admin/traffic", json={"challenger_share": 0.5}, headers=admin_headers).raise_for_status()
        health = httpx.get(f"{url}/health").json()
        assert health["challenger"] == versions["v2"], health
        if not args.no_bare:
            port = free_port()
            procs.append(start([sys.executable, "-c", BARE_APP % port], env, tmp / "bare.log",
                               f"http://{HOST}:{port}/docs"))
            targets[BARE] = (f"http://{HOST}:{port}/predict", ratchet_bodies)

        # rounds interleave the servers, so a change in the machine's background load hits all of them
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        print(f"{'round':5s} {'server':38s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-2xx':>8s}")
        for rnd in range(1, args.rounds + 1):
            for name, (target, bodies) in targets.items():
                r = measure(target, bodies, args.seconds, args.connections, tmp, args.tool)
                runs[name].append(r)
                print(f"{rnd:<5d} {name:38s} {r['requests_per_s']:8.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
                      f"{r['non_2xx']:8d}", flush=True)
            rt = runs[RATCHET][-1]
            if MLFLOW in runs:
                m = runs[MLFLOW][-1]
                print(f"      ratchet / mlflow this round: throughput x{rt['requests_per_s'] / m['requests_per_s']:.2f}")
            print(f"      V2 / /predict this round: throughput x{runs[V2][-1]['requests_per_s'] / rt['requests_per_s']:.2f}")
        med = {name: {k: statistics.median(r[k] for r in rs) for k in ("requests_per_s", "p50_ms", "p99_ms")}
               for name, rs in runs.items()}
        print(f"\nmedian of {args.rounds} rounds:")
        for name, r in med.items():
            print(f"      {name:38s} {r['requests_per_s']:8.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}")
        rt = med[RATCHET]
        if MLFLOW in med:
            m = med[MLFLOW]
            print(f"\nratchet / mlflow: throughput x{rt['requests_per_s'] / m['requests_per_s']:.2f}, "
                  f"p99 x{rt['p99_ms'] / m['p99_ms']:.3f}   (target: throughput >= x5, ratchet p99 <= 25 ms)")
        print(f"Open Inference Protocol / /predict: throughput x{med[V2]['requests_per_s'] / rt['requests_per_s']:.2f}, "
              f"p99 x{med[V2]['p99_ms'] / rt['p99_ms']:.2f}   (target: throughput >= x0.8)")
        if BARE in med:
            print(f"ratchet / bare FastAPI: throughput x{rt['requests_per_s'] / med[BARE]['requests_per_s']:.2f}, "
                  f"p99 x{rt['p99_ms'] / med[BARE]['p99_ms']:.2f}")
        stats = httpx.get(f"{url}/stats").json()
        print(f"ratchet requests by version: { {v: s['requests'] for v, s in stats['versions'].items()} }, "
              f"fast path: {stats.get('fast_path')}")
        httpx.put(f"{url}/admin/traffic", json={"challenger_share": 0.0}, headers=admin_headers).raise_for_status()

        if not args.no_canary:
            print("\ncanary under load (ramp 5-25-50-100 % and promote; then a broken challenger, rolled back) ...",
                  flush=True)
            c = canary_under_load(ctx, url, rows, labels, versions, tmp)
            for o in c["outcomes"]:
                print(f"  v{o['challenger']}: {o['action']} {o['steps']}"
                      + (f" - {'; '.join(o['reason'])[:160]}" if o.get("reason") else ""))
            ld = c["load"]
            print(f"  load during the canaries ({c['seconds']} s): {ld['requests']} requests, "
                  f"{ld['requests_per_s']} req/s, non-2xx {ld['non_2xx']}, transport errors "
                  f"{ld['transport_errors'] or 0}, feedback non-2xx {ld['feedback_non_2xx']}, "
                  f"p99 {ld['p99_ms']} ms, by version {ld['by_version']}")
    finally:
        for p in procs:
            stop(p)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def families_main(args, families: list[str]) -> int:
    """One home and one ``python -m ratchet.serving`` per family, the same rows and load on each."""
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="ratchet-bench-families-"))
    bin_dir = Path(sys.executable).parent
    procs: list[subprocess.Popen] = []
    targets: dict[str, tuple[str, list[str]]] = {}
    try:
        for fam in families:
            home = tmp / fam / "home"
            env = {
                **os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "RATCHET_HOME": str(home), "RATCHET_CONFIG": str(ROOT / "ratchet" / "configs" / "ratchet.yaml"),
                "RATCHET_ADMIN_TOKEN": TOKEN, "MLFLOW_TRACKING_URI": f"sqlite:///{(home / 'mlflow.db').resolve()}",
                "WHYLOGS_NO_ANALYTICS": "True", "PYTHONPATH": str(ROOT),
            }
            env.pop("RATCHET_API_KEY", None)
            print(f"building a {fam} model in {home} ...", flush=True)
            _, rows, _, _ = build_home(home, fam)
            port = free_port()
            procs.append(start([sys.executable, "-m", "ratchet.serving", "--port", str(port)], env,
                               tmp / f"{fam}.log", f"http://{HOST}:{port}/ready"))
            targets[fam] = (f"http://{HOST}:{port}", [json.dumps({"row": r}) for r in rows])
        runs: dict[str, list[dict]] = {f: [] for f in families}
        print(f"\n{args.connections} connections, single-row /predict, {args.seconds:.0f} s each, champion only")
        print(f"{'round':5s} {'family':10s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-2xx':>8s}")
        for rnd in range(1, args.rounds + 1):
            for fam, (url, bodies) in targets.items():
                r = measure(f"{url}/predict", bodies, args.seconds, args.connections, tmp, args.tool)
                runs[fam].append(r)
                print(f"{rnd:<5d} {fam:10s} {r['requests_per_s']:8.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
                      f"{r['non_2xx']:8d}", flush=True)
        base = families[0]
        med = {f: {k: statistics.median(r[k] for r in rs) for k in ("requests_per_s", "p99_ms")} for f, rs in runs.items()}
        print(f"\nmedian of {args.rounds} rounds (target: each family's req/s >= 0.8x {base}'s):")
        for fam, (url, _) in targets.items():
            fast = httpx.get(f"{url}/stats").json().get("fast_path")
            print(f"      {fam:10s} {med[fam]['requests_per_s']:8.0f} req/s  p99 {med[fam]['p99_ms']:6.2f} ms  "
                  f"x{med[fam]['requests_per_s'] / med[base]['requests_per_s']:.2f} of {base}  fast path: {fast}")
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
