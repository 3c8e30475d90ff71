"""Training speed, measured against baselines run in the same script; asserts nothing.

1. Lightning against a plain PyTorch loop: the same TabularMLP, the same tensors,
   the same batches (TensorBatches slicing, same seed), the same AdamW, the same
   number of optimizer steps. The Lightning side is ratchet's own training path
   (``ratchet.training.model.distributed.loop.run_fit``, the production Trainer settings). Throughput
   is training rows per second of training time (validation excluded), best
   epoch of interleaved repeats, after a warm-up epoch; on the CPU with one
   thread (the default) per CPU-second of the process, which a busy neighbour on
   a shared machine skews less than wall time (wall-clock figures are printed
   beside it). Target: ratio >= 0.95.
   Headline: ``batches_per_step: 64`` (the config); also 1 (one batch per
   Lightning step), and a plain loop fed by a per-row DataLoader, for context.
2. DDP, 2 processes against 1 (on CPU; on GPU when there are two; ``--no-ddp``
   skips it): the same data, epochs and threads per process. Steady-state
   throughput (all ranks' rows over the slowest rank's epoch) and wall time of
   the whole fit, process start included.
3. Tuning (CPU, needs the full ratchet install): trials per hour with pruning
   against without, the same seeded TPE, the two studies advancing in turn, and
   the best validation loss each reaches.

    python benchmarks/training.py [--accelerator cpu|gpu] [--rows 120000] [--epochs 4] [--repeats 5]
                                  [--threads 1] [--parts 1,2,3] [--no-ddp] [--no-tune] [--trials 12] [--quick]

Parts 1 and 2 need only torch, Lightning and this repository's ``ratchet.model``
tensor modules (no pandas, scikit-learn or MLflow). ``--accelerator gpu``
without a CUDA device prints why and exits 0 after the CPU figures.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402

from ratchet.training.model.distributed.loop import FitSpec, run_fit  # noqa: E402
from ratchet.training.model.module import TabularMLP  # noqa: E402
from ratchet.training.model.tensors import TensorBatches  # noqa: E402

MODEL_ARGS = {"hidden": [64, 32], "dropout": 0.1, "learning_rate": 3e-3}


class EpochTimer(Callback):
    """Training seconds of each epoch, from its start to the start of validation
    (the device synchronized at both ends); whether the bare-step path ran."""

    def __init__(self) -> None:
        self.seconds: list[tuple[float, float]] = []  # (wall, process CPU) per epoch
        self.bare_steps: bool | None = None
        self._t0: tuple[float, float] | None = None

    @staticmethod
    def _now(pl_module) -> tuple[float, float]:
        _sync(pl_module.device)
        return clock()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = self._now(pl_module)

    def _stop(self, pl_module) -> None:
        if self._t0 is not None:
            self.seconds.append(elapsed(self._t0, self._now(pl_module)))
            self._t0 = None
        self.bare_steps = getattr(pl_module, "_bare_steps", None)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._stop(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._stop(pl_module)


def make_data(rows: int, features: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=g)
    w = torch.randn(features, generator=g)
    y = ((x @ w + 0.5 * torch.randn(rows, generator=g)) > 0).long()
    n_val = max(1000, rows // 50)
    return x[n_val:], y[n_val:], x[:n_val], y[:n_val]


def clock() -> tuple[float, float]:
    """Wall-clock and this process's CPU time. With one thread per process on the
    CPU, CPU time is the loop's own work: a busy neighbour on a shared machine
    stretches wall time much more than CPU time."""
    return time.perf_counter(), time.process_time()


def elapsed(t0: tuple[float, float], t1: tuple[float, float]) -> tuple[float, float]:
    return t1[0] - t0[0], t1[1] - t0[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_epochs(x, y, batch_size: int, epochs: int, device: torch.device, seed: int = 0) -> list[float]:
    """The baseline: a plain PyTorch loop over the same batches, on the same device."""
    torch.manual_seed(seed)
    model = TabularMLP(x.shape[1], 2, **MODEL_ARGS).to(device).train()
    opt = model.configure_optimizers()
    x, y = x.to(device), y.to(device)
    ds = TensorBatches(x, y, batch_size, shuffle=True, seed=seed)
    seconds = []
    for _ in range(epochs):
        _sync(device)
        t0 = clock()
        running = torch.zeros((), device=device)
        for xb, yb in ds.shard(0, 1):
            loss = model.loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += loss.detach() * len(yb)
        _sync(device)
        seconds.append(elapsed(t0, clock()))
    return seconds


def per_row_loader_epochs(x, y, batch_size: int, epochs: int, seed: int = 0) -> list[float]:
    """Context only: the common plain loop, a DataLoader collating single rows."""
    torch.manual_seed(seed)
    model = TabularMLP(x.shape[1], 2, **MODEL_ARGS).train()
    opt = model.configure_optimizers()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    seconds = []
    for _ in range(epochs):
        t0 = clock()
        for xb, yb in loader:
            loss = model.loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds.append(elapsed(t0, clock()))
    return seconds


def spec_for(data, batch_size: int, epochs: int, accelerator: str, devices, batches_per_step: int, callbacks=()):
    x, y, xv, yv = data
    return FitSpec(
        module_class="ratchet.training.model.module.TabularMLP",
        module_args={"n_features": x.shape[1], "n_classes": 2, **MODEL_ARGS},
        x_train=x, y_train=y, x_val=xv, y_val=yv, batch_size=batch_size, seed=0,
        trainer={"max_epochs": epochs, "accelerator": accelerator, "devices": devices, "strategy": "auto",
                 "precision": "32-true", "num_nodes": 1},
        early_stopping_patience=None, batches_per_step=batches_per_step, callbacks=list(callbacks),
    )


def lightning_epochs(data, batch_size: int, epochs: int, accelerator: str, batches_per_step: int) -> list[float]:
    timer = EpochTimer()
    run_fit(spec_for(data, batch_size, epochs, accelerator, 1, batches_per_step, [timer]))
    if batches_per_step > 1 and not timer.bare_steps:
        print("   note: the module took every step through Lightning's optimizer wrapper")
    return timer.seconds


def best(seconds: list[float]) -> float:
    return min(seconds[1:] if len(seconds) > 1 else seconds)  # first epoch: warm-up


def part_lightning_vs_plain(args, device: torch.device, accelerator: str) -> dict[str, float]:
    data = make_data(args.rows, args.features)
    n = len(data[0])
    chunks = args.batches_per_step
    runs: dict[str, list[float]] = {"plain": [], **{f"lightning_{k}": [] for k in chunks}, "lightning_1": []}
    for _ in range(args.repeats):  # interleaved, so a noisy neighbour hits every variant alike
        runs["plain"] += plain_epochs(data[0], data[1], args.batch_size, args.epochs, device)[1:]
        for k in dict.fromkeys([*chunks, 1]):
            runs[f"lightning_{k}"] += lightning_epochs(data, args.batch_size, args.epochs, accelerator, k)[1:]
    if device.type == "cpu" and not args.quick:
        runs["per_row"] = per_row_loader_epochs(data[0], data[1], args.batch_size, 2)[1:]
    # CPU: CPU time when each process has one thread (see clock()); else, and on GPU, wall time
    by_cpu = device.type == "cpu" and torch.get_num_threads() == 1
    col = 1 if by_cpu else 0
    rate = {k: n / min(e[col] for e in v) for k, v in runs.items() if v}
    med = {k: n / statistics.median(e[col] for e in v) for k, v in runs.items() if v}
    wall = {k: n / min(e[0] for e in v) for k, v in runs.items() if v}
    print(f"\n1. Lightning vs plain PyTorch loop [{accelerator}, {device}]: {n} rows x {args.features} features, "
          f"batch {args.batch_size}, MLP {MODEL_ARGS['hidden']}, {args.epochs} epochs x {args.repeats} repeats "
          f"(first epoch of each run left out), torch threads {torch.get_num_threads()}; rows per "
          f"{'CPU-second of the process' if by_cpu else 'second'}")
    print(f"   {'variant':58s} {'best rows/s':>12s} {'median':>10s} {'ratio':>7s}"
          + (f" {'wall rows/s':>12s} {'ratio':>7s}" if by_cpu else ""))
    labels = {"plain": "plain loop, same batches (baseline)",
              "per_row": "plain loop, per-row DataLoader (context)"}
    for k in runs:
        if k.startswith("lightning_"):
            b = int(k.split("_")[1])
            labels[k] = f"ratchet Lightning path, {b} batch{'es' if b > 1 else ''} per Lightning step"
    for k in runs:
        if k in rate:
            line = f"   {labels[k]:58s} {rate[k]:12.0f} {med[k]:10.0f} {rate[k] / rate['plain']:7.3f}"
            if by_cpu:
                line += f" {wall[k]:12.0f} {wall[k] / wall['plain']:7.3f}"
            print(line)
    plain_wall = [e[0] for e in runs["plain"]]
    print(f"   noise: the plain loop's slowest epoch took {max(plain_wall) / min(plain_wall):.2f}x its fastest (wall)")
    head = f"lightning_{chunks[0]}"
    ratio = rate[head] / rate["plain"]
    print(f"   Lightning/plain throughput ratio ({chunks[0]} batches per step, the config default): {ratio:.3f} "
          f"(target >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'}; from medians {med[head] / med['plain']:.3f}"
          + (f"; wall clock {wall[head] / wall['plain']:.3f}" if by_cpu else "") + ")")
    return {"samples_per_s_lightning": wall[head], "samples_per_s_plain": wall["plain"], "ratio": ratio}


def part_ddp(args, accelerator: str) -> None:
    from ratchet.training.model.distributed.launch import launch

    data = make_data(args.rows, args.features, seed=1)
    n = len(data[0])
    out: dict[int, dict[str, float]] = {}
    for procs in (1, 2):
        spec = spec_for(data, args.batch_size, args.epochs, accelerator, procs, args.batches_per_step[0])
        t0 = time.perf_counter()
        result = launch(spec) if procs > 1 else run_fit(spec)
        wall = time.perf_counter() - t0
        epoch = max(r["train_seconds_last_epoch"] for r in result.ranks)
        rows = sum(r["train_rows_per_epoch"] for r in result.ranks)
        out[procs] = {"wall": wall, "rate": rows / epoch, "val_loss": result.metrics.get("val_loss", float("nan"))}
    print(f"\n2. DDP [{accelerator}]: 2 processes vs 1, {n} rows, batch {args.batch_size} per process, "
          f"{args.epochs} epochs ({os.cpu_count()} CPU cores)")
    for p, o in out.items():
        print(f"   {p} process(es): {o['rate']:10.0f} rows/s in a training epoch, fit wall {o['wall']:6.1f} s "
              f"(process start included), val_loss {o['val_loss']:.4f}")
    print(f"   ratio 2/1: throughput {out[2]['rate'] / out[1]['rate']:.3f}, wall time {out[2]['wall'] / out[1]['wall']:.3f}")


def part_tune(args) -> None:
    try:
        import mlflow

        from ratchet.core.config import load_config
        from ratchet.data.schema_inference import infer_schema
        from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
        from ratchet.training.model.tune import tune
        from ratchet.training.window import split_frame
    except ImportError as e:
        print(f"\n3. Tuning: skipped, needs the full ratchet install ({e})")
        return
    root = Path(__file__).resolve().parents[1]
    tmp = Path(tempfile.mkdtemp(prefix="ratchet-bench-"))
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    mlflow.MlflowClient().search_experiments()  # database created before timing
    df = generate_batch(0, args.tune_rows, seed=3)
    schema = infer_schema(df, DEMO_TARGET)
    train, val, _ = split_frame(df, 0.15, 0.2, seed=1)
    print(f"\n3. Tuning: {args.trials} trials, {len(train)} training rows, built-in search space, "
          f"epochs and early stopping, seeded TPE; the two studies advance one trial at a time, in turn")
    seconds = {False: 0.0, True: 0.0}
    results = {}
    cfgs = {p: load_config([root / "ratchet" / "configs" / "ratchet.yaml"], {"tune": {"pruning": p, "heartbeat_s": None}})
            for p in (False, True)}
    for k in range(1, args.trials + 1):
        for pruning in (False, True):  # interleaved, so both see the same machine
            t0 = time.perf_counter()
            with mlflow.start_run():
                results[pruning] = tune(train, val, schema, cfgs[pruning], storage=f"sqlite:///{tmp / 'optuna.db'}",
                                        study_name=f"bench-pruning-{pruning}", trials=k, progress=False,
                                        checkpoint_root=tmp / "checkpoints")
            seconds[pruning] += time.perf_counter() - t0
    for pruning in (False, True):
        r = results[pruning]
        epochs = sum((t.user_attrs.get("metrics") or {}).get("epochs", len(t.intermediate_values)) for t in r.study.trials)
        print(f"   pruning {'on ' if pruning else 'off'}: {args.trials / seconds[pruning] * 3600:7.0f} trials/hour "
              f"({seconds[pruning]:6.1f} s), {r.n_pruned} pruned, {epochs:.0f} epochs trained, "
              f"best val_loss {r.best_value:.4f} (trial {r.best_trial})")
    r0, r1 = results[False], results[True]
    print(f"   ratio pruning/no pruning: trials per hour {seconds[False] / seconds[True]:.3f}; best val_loss "
          f"{r1.best_value:.4f} vs {r0.best_value:.4f} (difference {r1.best_value - r0.best_value:+.4f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--rows", type=int, default=120_000)
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--batches-per-step", default="64",
                    help="comma-separated; the first is the headline figure (the built-in config: 64)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per process (0: torch's default). One thread keeps a small MLP's timing "
                         "steady on a shared machine; every variant runs with the same number")
    ap.add_argument("--parts", default="1,2,3", help="which measurements to run, e.g. 1 or 1,3")
    ap.add_argument("--no-ddp", dest="ddp", action="store_false")
    ap.add_argument("--no-tune", dest="tune", action="store_false")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--tune-rows", type=int, default=40_000)
    ap.add_argument("--quick", action="store_true", help="smaller: 30k rows, 2 repeats")
    args = ap.parse_args()
    args.batches_per_step = [int(k) for k in str(args.batches_per_step).split(",")]
    if args.quick:
        args.rows, args.repeats, args.trials = 30_000, 2, 6
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the DDP ranks: the same per process
    # ratchet's Trainer runs with deterministic=True, which sets these for the whole
    # process: set them first so the plain loop runs under the same flags
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    import lightning

    print(f"torch {torch.__version__} (CUDA build {torch.version.cuda}, CUDA available {torch.cuda.is_available()}), "
          f"lightning {lightning.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} CPU cores")

    parts = {int(p) for p in args.parts.split(",")}
    args.ddp, args.tune = args.ddp and 2 in parts, args.tune and 3 in parts
    cpu = part_lightning_vs_plain(args, torch.device("cpu"), "cpu") if 1 in parts or args.accelerator == "gpu" else {}
    if args.accelerator == "gpu":
        if not torch.cuda.is_available():
            print("\n--accelerator gpu: no CUDA device visible to torch "
                  f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); GPU part skipped")
            return 0
        print(f"   GPU: {torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}")
        gpu = part_lightning_vs_plain(args, torch.device("cuda", 0), "gpu")
        print(f"\n   samples/s, Lightning path: GPU {gpu['samples_per_s_lightning']:.0f} vs CPU "
              f"{cpu['samples_per_s_lightning']:.0f} (x{gpu['samples_per_s_lightning'] / cpu['samples_per_s_lightning']:.2f});"
              f" plain loop: GPU {gpu['samples_per_s_plain']:.0f} vs CPU {cpu['samples_per_s_plain']:.0f}")
        if args.ddp and torch.cuda.device_count() >= 2:
            part_ddp(args, "gpu")
        elif args.ddp:
            print("\n2. DDP [gpu]: skipped, one GPU")
        return 0
    if args.ddp:
        part_ddp(args, "cpu")
    if args.tune:
        part_tune(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
