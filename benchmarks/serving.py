"""The same registered champion served by ratchet and by its peers: one table from one run.

Trains a small model with ratchet's own ``fit`` on the synthetic stream, registers it in a
temporary home (MLflow on SQLite), starts every server below on that one registered version,
and puts the same load on each in turn, the servers interleaved over ``--rounds`` rounds
(medians reported, every round printed as it comes):

  empty uvicorn endpoint   a raw ASGI app that reads the body and answers a constant: the limit
  ratchet, fast path       ``python -m ratchet.serving``: champion and challenger loaded, a 50 % split
                           (routing on), live profiling (the shipped config), metrics, feedback store
  ratchet, V2 protocol     the same server, ``POST /v2/models/<name>/infer`` (the Open Inference
                           Protocol, a tensor per column) through ``/predict``'s code path
  ratchet, fast path off   the same server with ``serving.fast_path: false``: the model's own
                           ``predict_proba`` (pandas, the ColumnTransformer, torch), as the peers run it
  mlflow models serve      ``mlflow models serve -m models:/<name>/<v> --env-manager local``: the
                           model's pyfunc in MLflow's scoring server (uvicorn, 1 worker)
  BentoML                  a ``@bentoml.service`` (1 worker) calling the same pyfunc on a DataFrame
  MLServer                 MLServer's MLflow runtime on the same pyfunc (Open Inference Protocol,
                           pandas codec, ``parallel_workers: 0``)

BentoML and MLServer are the optional ``bench`` extra; each is skipped with a note when its
interpreter (``--bentoml-python``, ``--mlserver-python``; default: this one) cannot import it.
MLServer pins an older FastAPI than ratchet, and the two peers pin different OpenTelemetry
releases, so each may live in a venv of its own that sees this one's packages after its own
(a ``.pth`` file in it naming this venv's site-packages).

The same thread settings for every server: one process serving (one uvicorn worker, one BentoML
worker, no MLServer worker pool), ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` = 1 in every server's environment (torch reads them at start: one
intra-op thread, as ratchet's own ``serving.torch_threads: 1``), the same machine, one at a time.

Load: wrk (``--tool loadgen``: ``python -m benchmarks.loadgen``, when wrk is not installed),
8 keep-alive connections, 1 thread, a 2 s warm-up on the same server first, single-row requests
drawn from 256 rows, and requests of 100 rows (16 distinct batches). Each server gets its own
protocol's body for the same rows. The table: requests/s, rows/s, p50 and p99 latency, non-2xx
answers (and socket errors), the server's CPU time per request (its process and children, from
/proc: the figure least moved by other work on a shared machine) and requests/s as a multiple of
the empty endpoint's in the same round. Every figure is computed in the run.

Then, unless ``--no-canary``: a canary under load (load from a second process; the challenger,
a copy of the champion, ramps 5-25-50-100 % and is promoted; a broken challenger, NaN weights, is
ramped and rolled back at its first step; every non-2xx answer counted).

    python benchmarks/serving.py [--seconds 10] [--rounds 2] [--only empty,ratchet,mlflow,bentoml,mlserver]
                                 [--bentoml-python PATH] [--mlserver-python PATH] [--tool wrk|loadgen]
                                 [--no-canary] [--keep]
    python benchmarks/serving.py --families mlp,mlp_ple,tabm [--unbatched]   # req/s per model family, against the first

Measured with ``--families mlp,mlp_ple,tabm --seconds 5 --rounds 3`` on the quiet 2-core machine
(session 12): before the families had a single-row forward, mlp 11,062 req/s, mlp_ple 0.62x,
tabm 0.48x; after (TabM's single row in float32, each member's own matrices), mlp 10,879, mlp_ple
1.02x, tabm 0.58x. Session 13, TabM's members as the rows of one matrix times the shared weights
(``families._tabm_row``): tabm 0.67x and 0.64x. Its floor one request at a time is the count of
numpy calls, not the arithmetic: about 25 calls a row (22 us in process against the MLP's 7.6).
Session 14, the single rows of one turn of the event loop in one forward (``serving.batch_inline``,
``ratchet.serving.transport``), ``--unbatched`` adding each family with a forward per request
(``<family>/1by1``): mlp 14,543 req/s (1by1 12,351), mlp_ple 0.95x (1by1 0.75x), tabm **0.81x of
the batched MLP, 0.95x of the MLP one by one** (1by1 0.64x); a run without ``--unbatched``: mlp
14,410, mlp_ple 0.97x, tabm 0.83x.

Where ratchet's part of a single-row request goes, per part and in process:
``python benchmarks/serving_profile.py`` (figures and the py-spy view of the running service in
``docs/scale.md``).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ratchet.core.files import free_port, stop_process  # noqa: E402

if TYPE_CHECKING:
    from ratchet.core.config import RatchetConfig, TrainConfig

TOKEN = "bench-t0ken"
HOST = "127.0.0.1"
BATCH = 100
THREADS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
V2_TYPES = {bool: "BOOL", int: "INT64", float: "FP64", str: "BYTES"}


def v2_body(rows: list[dict], pandas_codec: bool = False) -> str:
    """The rows as an Open Inference Protocol infer request: one [n] tensor per column (MLServer's
    pandas codec when ``pandas_codec``; ratchet reads either)."""
    cols = list(rows[0])
    body: dict = {"inputs": [{"name": k, "shape": [len(rows)], "datatype": V2_TYPES[type(rows[0][k])],
                              "data": [r[k] for r in rows]} for k in cols]}
    if pandas_codec:
        body["parameters"] = {"content_type": "pd"}
    return json.dumps(body)


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240.0, method: str = "GET") -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited ({proc.returncode}); see {log}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.request(method, url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not up after {timeout} s; see {log}")


def stop(proc: subprocess.Popen) -> None:
    stop_process(proc)


# ---------------------------------------------------------------- the model
def train_config(family: str | None, cfg: RatchetConfig) -> TrainConfig:
    """The benchmark model's training config: 5 epochs of ``family`` (None: the plain MLP); TabM
    as the shipped first trial builds it (``cfg.tune.first_trial``, ratchet/configs/ratchet.yaml)."""
    from ratchet.core.config import TrainConfig

    out = TrainConfig(max_epochs=5, family=family)
    if family == "tabm":
        out.model_args = {k: cfg.tune.first_trial[k] for k in ("hidden", "k", "d_embedding", "n_bins")}
    return out


def build_home(home: Path, family: str | None = None) -> tuple[object, list[dict], list[int], dict]:
    """Train and register v1 (champion), v2 (the same model again), v3 (NaN weights); ``family``:
    the model family (``ratchet.training.model.families``; default the plain MLP)."""
    import mlflow
    import torch

    from ratchet.data.schema_inference import infer_schema
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
    from ratchet.runtime.context import load_context
    from ratchet.training.model.fit import fit

    ctx = load_context([str(ROOT / "ratchet" / "configs" / "ratchet.yaml")], home=str(home))
    df = generate_batch(0, 3000, seed=5)
    schema = infer_schema(df, DEMO_TARGET)
    predictor = fit(df.iloc[:2400], df.iloc[2400:], schema, train_config(family, ctx.cfg), progress=False).predictor
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
def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its children, alive now."""
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def wrk_load(url: str, bodies: list[str], seconds: float, connections: int, tmp: Path) -> dict:
    script = tmp / "bodies.lua"
    lua_bodies = ",\n".join("[==[" + b + "]==]" for b in bodies)
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
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script), url],
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
    }


def loadgen_load(url: str, bodies: list[str], seconds: float, connections: int, tmp: Path) -> dict:
    """The same load from ``python -m benchmarks.loadgen`` in a process of its own."""
    bodies_file, out = tmp / "bodies.jsonl", tmp / "load.json"
    bodies_file.write_text("\n".join(bodies) + "\n")
    out.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--bodies", str(bodies_file),
         "--connections", str(connections), "--duration", str(seconds), "--out", str(out)],
        cwd=ROOT, stdout=subprocess.DEVNULL, check=True, timeout=seconds + 120,
    )
    r = json.loads(out.read_text())
    return {k: r[k] for k in ("requests", "requests_per_s", "p50_ms", "p99_ms")} | {
        "non_2xx": (r.get("non_2xx") or 0) + (r.get("transport_errors") or 0)}


def measure(server: Server, bodies: list[str], seconds: float, connections: int, tmp: Path, tool: str) -> dict:
    """Warm-up (2 s, not counted), then ``seconds`` of load; adds the server's CPU per request."""
    load = wrk_load if tool == "wrk" else loadgen_load
    load(server.url, bodies, 2, connections, tmp)
    cpu0 = _cpu_seconds(server.proc.pid)
    r = load(server.url, bodies, seconds, connections, tmp)
    cpu = _cpu_seconds(server.proc.pid) - cpu0
    r["cpu_us_per_request"] = cpu / r["requests"] * 1e6 if r["requests"] else None
    return r


# ---------------------------------------------------------------- servers
EMPTY_APP = """
import sys, uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"predictions":[0]}'})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""

BENTO_SERVICE = """
import os

import bentoml
import mlflow.pyfunc
import pandas as pd


@bentoml.service(workers=1)
class Champion:
    def __init__(self) -> None:
        self.model = mlflow.pyfunc.load_model(os.environ["BENCH_MODEL_PATH"])

    @bentoml.api
    def predict(self, rows: list[dict]) -> list:
        return self.model.predict(pd.DataFrame(rows))["prediction"].tolist()
"""


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    url: str  # where the load goes
    single: list[str]  # request bodies, one row each
    batch: list[str]  # request bodies, BATCH rows each
    runs: dict[str, list[dict]] = field(default_factory=lambda: {"single": [], "batch": []})


def start(cmd: list[str], env: dict, log: Path, ready_url: str, cwd: Path = ROOT, method: str = "GET") -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    try:
        wait_http(ready_url, proc, log, method=method)
    except Exception:
        stop(proc)
        raise
    return proc


def _imports(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def start_servers(args, ctx, versions: dict, rows: list[dict], tmp: Path, env: dict) -> tuple[list[Server], list[str]]:
    """Every server asked for, in table order; notes for the ones skipped."""
    import httpx
    import mlflow

    bin_dir = Path(sys.executable).parent
    only = set(args.only.split(",")) if args.only else None
    want = lambda key: only is None or key in only  # noqa: E731
    batches = [rows[(i * 37) % len(rows):][:BATCH] or rows[:BATCH] for i in range(16)]
    batches = [b if len(b) == BATCH else (b + rows)[:BATCH] for b in batches]
    ratchet_single = [json.dumps({"row": r}) for r in rows]
    ratchet_batch = [json.dumps({"rows": b}) for b in batches]
    servers: list[Server] = []
    notes: list[str] = []
    model_uri = f"models:/{ctx.cfg.model_name}/{versions['v1']}"

    def add(name: str, cmd: list[str], ready: str, url: str, single: list[str], batch: list[str],
            server_env: dict | None = None, cwd: Path = ROOT, log: str = "", method: str = "GET") -> None:
        print(f"  starting {name} ...", flush=True)
        proc = start(cmd, server_env or env, tmp / f"{log or name.split()[0].lower()}.log", ready, cwd, method)
        servers.append(Server(name, proc, url, single, batch))

    if want("empty"):
        port = free_port()
        add("empty uvicorn endpoint", [sys.executable, "-c", EMPTY_APP, str(port)], f"http://{HOST}:{port}/",
            f"http://{HOST}:{port}/predict", ratchet_single, ratchet_batch, log="empty", method="POST")
    if want("ratchet"):
        for fast in (True, False):
            port = free_port()
            run_env = dict(env)
            if not fast:  # its own serving folder (traffic file, profiles), the same registry
                home = tmp / "home-no-fast-path"
                override = tmp / "no-fast-path.yaml"
                override.write_text("serving:\n  fast_path: false\n")
                run_env |= {"RATCHET_HOME": str(home), "RATCHET_MLFLOW_TRACKING_URI": env["MLFLOW_TRACKING_URI"],
                            "RATCHET_CONFIG": os.pathsep.join([env["RATCHET_CONFIG"], str(override)])}
            url = f"http://{HOST}:{port}"
            add(f"ratchet, fast path{'' if fast else ' off'}", [sys.executable, "-m", "ratchet.serving", "--port", str(port)],
                f"{url}/ready", f"{url}/predict", ratchet_single, ratchet_batch, run_env,
                log=f"ratchet{'' if fast else '-no-fast-path'}")
            headers = {"Authorization": f"Bearer {TOKEN}"}
            httpx.put(f"{url}/admin/traffic", json={"challenger_share": 0.5}, headers=headers).raise_for_status()
            health = httpx.get(f"{url}/health").json()
            stats = httpx.get(f"{url}/stats").json()
            assert health["challenger"] == versions["v2"], health
            assert all(stats["fast_path"].values()) is fast, stats["fast_path"]  # what the row's name says
            if fast:  # the same server and rows under the Open Inference Protocol
                servers.append(Server("ratchet, V2 protocol", servers[-1].proc,
                                      f"{url}/v2/models/{ctx.cfg.model_name}/infer",
                                      [v2_body([r]) for r in rows], [v2_body(b) for b in batches]))
    if want("mlflow"):
        port = free_port()
        add("mlflow models serve", [str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager",
                                    "local", "-h", HOST, "-p", str(port), "-w", "1"],
            f"http://{HOST}:{port}/ping", f"http://{HOST}:{port}/invocations",
            [json.dumps({"dataframe_records": [r]}) for r in rows],
            [json.dumps({"dataframe_records": b}) for b in batches], log="mlflow")
    model_path = None
    if want("bentoml") or want("mlserver"):
        mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
        model_path = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(tmp / "model")))
    peer_env = {**env, "BENCH_MODEL_PATH": str(model_path)}
    if want("bentoml"):
        peers_python = args.bentoml_python or sys.executable
        if _imports(peers_python, "bentoml"):
            port = free_port()
            (tmp / "bento").mkdir(exist_ok=True)
            (tmp / "bento" / "service.py").write_text(BENTO_SERVICE)
            add("BentoML", [peers_python, "-m", "bentoml", "serve", "service:Champion", "--host", HOST, "--port",
                            str(port)],
                f"http://{HOST}:{port}/readyz", f"http://{HOST}:{port}/predict",
                [json.dumps({"rows": [r]}) for r in rows], [json.dumps({"rows": b}) for b in batches],
                {**peer_env, "BENTOML_DO_NOT_TRACK": "True"}, cwd=tmp / "bento", log="bentoml")
        else:
            notes.append(f"BentoML skipped: not importable by {peers_python} (pip install 'ratchet[bench]')")
    if want("mlserver"):
        peers_python = args.mlserver_python or sys.executable
        if _imports(peers_python, "mlserver_mlflow"):
            port = free_port()
            folder = tmp / "mlserver"
            (folder / "champion").mkdir(parents=True, exist_ok=True)
            (folder / "settings.json").write_text(json.dumps({
                "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
                "parallel_workers": 0, "debug": False}))
            (folder / "champion" / "model-settings.json").write_text(json.dumps({
                "name": "champion", "implementation": "mlserver_mlflow.MLflowRuntime",
                "parameters": {"uri": str(model_path)}}))
            add("MLServer", [str(Path(peers_python).parent / "mlserver"), "start", str(folder)],
                f"http://{HOST}:{port}/v2/models/champion/ready", f"http://{HOST}:{port}/v2/models/champion/infer",
                [v2_body([r], pandas_codec=True) for r in rows], [v2_body(b, pandas_codec=True) for b in batches],
                peer_env, cwd=folder, log="mlserver")
        else:
            notes.append(f"MLServer skipped: mlserver_mlflow not importable by {peers_python} "
                         "(pip install 'ratchet[bench]', in a venv of its own: it pins an older FastAPI)")
    return servers, notes


def _check_answers(servers: list[Server]) -> None:
    """Every server answers one of its single-row and batch bodies with 200 before it is measured."""
    import httpx

    for s in servers:
        for body in (s.single[0], s.batch[0]):
            r = httpx.post(s.url, content=body, headers={"Content-Type": "application/json"}, timeout=60)
            if r.status_code != 200:
                raise RuntimeError(f"{s.name}: {r.status_code} {r.text[:300]}")


def _fmt(v: float | None, spec: str) -> str:
    if v is None:  # right-aligned in the column's width
        return format("-", ">" + spec.split(".")[0].rstrip("df"))
    return format(v, spec)


def print_table(servers: list[Server], rounds: int, tool: str) -> None:
    empty = next((s for s in servers if s.name.startswith("empty")), None)

    def med(s: Server, kind: str, key: str) -> float | None:
        vals = [r[key] for r in s.runs[kind] if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    def ratio(s: Server, kind: str) -> float | None:
        if empty is None or not empty.runs[kind]:
            return None  # each round's requests/s over the empty endpoint's in the same round, then the median
        return statistics.median(a["requests_per_s"] / b["requests_per_s"]
                                 for a, b in zip(s.runs[kind], empty.runs[kind], strict=True) if b["requests_per_s"])

    head = (f"{'server':24s} | {'req/s':>7s} {'p50 ms':>7s} {'p99 ms':>7s} {'non2xx':>6s} {'cpu us':>7s} {'x empty':>7s}"
            f" | {'req/s':>6s} {'rows/s':>7s} {'p50 ms':>7s} {'p99 ms':>7s} {'non2xx':>6s} {'cpu us':>7s} {'x empty':>7s}")
    print(f"\nmedian of {rounds} round(s), {tool}, 8 connections; cpu us: the server's CPU time per request\n")
    print(f"{'':24s} | {'single row':^50s} | {f'batches of {BATCH} rows':^56s}")
    print(head)
    print("-" * len(head))
    for s in servers:
        cells = []
        for kind in ("single", "batch"):
            rps = med(s, kind, "requests_per_s")
            cells.append(
                f"{_fmt(rps, '7.0f' if kind == 'single' else '6.0f')} "
                + (f"{_fmt(rps * BATCH if rps is not None else None, '7.0f')} " if kind == "batch" else "")
                + f"{_fmt(med(s, kind, 'p50_ms'), '7.2f')} {_fmt(med(s, kind, 'p99_ms'), '7.2f')} "
                f"{_fmt(med(s, kind, 'non_2xx'), '6.0f')} {_fmt(med(s, kind, 'cpu_us_per_request'), '7.0f')} "
                f"{_fmt(ratio(s, kind), '7.3f')}"
            )
        print(f"{s.name:24s} | {cells[0]} | {cells[1]}")


# ---------------------------------------------------------------- canary
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
    ap.add_argument("--only", default=None, help="comma-separated: empty,ratchet,mlflow,bentoml,mlserver")
    ap.add_argument("--bentoml-python", default=None, help="the interpreter that runs BentoML (default: this one)")
    ap.add_argument("--mlserver-python", default=None, help="the interpreter that runs MLServer (default: this one)")
    ap.add_argument("--no-canary", action="store_true", help="skip the canary-under-load part")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    ap.add_argument("--tool", choices=("wrk", "loadgen"), default="wrk" if shutil.which("wrk") else "loadgen",
                    help="load generator for every server alike (default: wrk when installed)")
    ap.add_argument("--families", default="",
                    help="only ratchet's /predict, one server per model family (e.g. mlp,mlp_ple,tabm), interleaved; "
                    "req/s and p99 per family and against the first")
    ap.add_argument("--unbatched", action="store_true",
                    help="with --families: each family also with a forward per request (serving.batch_inline: false), "
                    "named <family>/1by1")
    args = ap.parse_args(argv)
    if args.tool == "wrk" and not shutil.which("wrk"):
        ap.error("wrk is not installed (apt-get install wrk), or use --tool loadgen")
    if args.families:
        return families_main(args, [f for f in args.families.split(",") if f])

    tmp = Path(tempfile.mkdtemp(prefix="ratchet-bench-serving-"))
    home = tmp / "home"
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        **THREADS_ENV,
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
    servers: list[Server] = []
    try:
        servers, notes = start_servers(args, ctx, versions, rows, tmp, env)
        _check_answers(servers)
        print(f"\nload: {args.tool}, {args.connections} connections, {args.seconds:.0f} s per measurement after a 2 s "
              f"warm-up; threads: {', '.join(f'{k}={v}' for k, v in THREADS_ENV.items())} in every server, "
              "one serving process each\n")
        print(f"{'round':5s} {'server':24s} {'rows':>5s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-2xx':>8s} "
              f"{'cpu us':>7s}")
        for rnd in range(1, args.rounds + 1):
            for s in servers:
                for kind, bodies in (("single", s.single), ("batch", s.batch)):
                    r = measure(s, bodies, args.seconds, args.connections, tmp, args.tool)
                    s.runs[kind].append(r)
                    print(f"{rnd:<5d} {s.name:24s} {1 if kind == 'single' else BATCH:5d} {r['requests_per_s']:8.0f} "
                          f"{_fmt(r['p50_ms'], '8.2f')} {_fmt(r['p99_ms'], '8.2f')} {r['non_2xx']:8d} "
                          f"{_fmt(r['cpu_us_per_request'], '7.0f')}", flush=True)
        print_table(servers, args.rounds, args.tool)
        for note in notes:
            print(note)
        fast = next((s for s in servers if s.name == "ratchet, fast path"), None)
        if fast is not None:
            import httpx

            stats = httpx.get(fast.url.replace("/predict", "/stats")).json()
            print(f"ratchet, fast path: requests by version {({v: s['requests'] for v, s in stats['versions'].items()})}")
            if not args.no_canary:
                print("\ncanary under load (ramp 5-25-50-100 % and promote; then a broken challenger, rolled back) ...",
                      flush=True)
                url = fast.url.removesuffix("/predict")
                import httpx

                httpx.put(f"{url}/admin/traffic", json={"challenger_share": 0.0},
                          headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
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
        for s in servers:
            stop(s.proc)
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
    targets: dict[str, Server] = {}
    try:
        for fam in families:
            home = tmp / fam / "home"
            config = str(ROOT / "ratchet" / "configs" / "ratchet.yaml")
            env = {
                **os.environ, **THREADS_ENV, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "RATCHET_HOME": str(home), "RATCHET_CONFIG": config,
                "RATCHET_ADMIN_TOKEN": TOKEN, "MLFLOW_TRACKING_URI": f"sqlite:///{(home / 'mlflow.db').resolve()}",
                "WHYLOGS_NO_ANALYTICS": "True", "PYTHONPATH": str(ROOT),
            }
            env.pop("RATCHET_API_KEY", None)
            print(f"building a {fam} model in {home} ...", flush=True)
            _, rows, _, _ = build_home(home, fam)
            bodies = [json.dumps({"row": r}) for r in rows]
            # the same model with a forward per request (serving.batch_inline: false), in its own serving folder
            one_by_one = tmp / fam / "one-by-one.yaml"
            one_by_one.write_text("serving:\n  batch_inline: false\n")
            for name, run_env in ((fam, env), (f"{fam}/1by1", env | {
                    "RATCHET_HOME": str(tmp / fam / "home-1by1"), "RATCHET_MLFLOW_TRACKING_URI": env["MLFLOW_TRACKING_URI"],
                    "RATCHET_CONFIG": os.pathsep.join([config, str(one_by_one)])})):
                if name != fam and not args.unbatched:
                    continue
                port = free_port()
                procs.append(start([sys.executable, "-m", "ratchet.serving", "--port", str(port)], run_env,
                                   tmp / f"{fam}{'' if name == fam else '-1by1'}.log", f"http://{HOST}:{port}/ready"))
                targets[name] = Server(name, procs[-1], f"http://{HOST}:{port}/predict", bodies, [])
        runs: dict[str, list[dict]] = {f: [] for f in targets}
        print(f"\n{args.connections} connections, single-row /predict, {args.seconds:.0f} s each, champion only")
        print(f"{'round':5s} {'family':14s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-2xx':>8s}")
        for rnd in range(1, args.rounds + 1):
            for fam, server in targets.items():
                r = measure(server, server.single, args.seconds, args.connections, tmp, args.tool)
                runs[fam].append(r)
                print(f"{rnd:<5d} {fam:14s} {r['requests_per_s']:8.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
                      f"{r['non_2xx']:8d}", flush=True)
        base = families[0]
        med = {f: {k: statistics.median(r[k] for r in rs) for k in ("requests_per_s", "p99_ms")} for f, rs in runs.items()}
        print(f"\nmedian of {args.rounds} rounds (target: each family's req/s >= 0.8x {base}'s):")
        for fam, server in targets.items():
            fast = httpx.get(server.url.replace("/predict", "/stats")).json().get("fast_path")
            print(f"      {fam:14s} {med[fam]['requests_per_s']:8.0f} req/s  p99 {med[fam]['p99_ms']:6.2f} ms  "
                  f"x{med[fam]['requests_per_s'] / med[base]['requests_per_s']:.2f} of {base}"
                  + (f"  x{med[fam]['requests_per_s'] / med[base + '/1by1']['requests_per_s']:.2f} of {base}/1by1"
                     if base + "/1by1" in med else "") + f"  fast path: {fast}")
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
