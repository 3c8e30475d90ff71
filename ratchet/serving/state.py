"""What the server is serving right now, and how that changes at run time.

A :class:`Snapshot` (champion, challenger, traffic) is immutable; a request reads
``runtime.snapshot`` once and uses that object to the end, so a reload, which
loads new models completely and then replaces the reference in one assignment,
never disturbs a request in flight.

Reloads happen on ``POST /admin/reload``, ``PUT /admin/traffic``, and from a
watcher thread that polls ``provider.versions()`` and the traffic file's
mtime every ``watch_interval_s`` (a rollback by another process is picked up
without a restart).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ratchet.core.config import ServingConfig
from ratchet.core.performance import Calibration
from ratchet.serving.fastpath import FastPath, compile_fast_path
from ratchet.serving.feedback import FeedbackStore
from ratchet.serving.metrics import ServingMetrics
from ratchet.serving.model_api import ALIASES, LoadedModel, ModelProvider
from ratchet.serving.profiler import LiveProfiler
from ratchet.serving.traffic_split import TRAFFIC_FILE, Traffic, read_traffic, write_traffic
from ratchet.serving.validation import RequestError, RowValidator, ValidatedBatch

log = logging.getLogger(__name__)


SMALL_BATCH = 16  # up to this many rows, a model's answer is checked and ranked in plain Python


class ModelFailure(Exception):
    """The model raised, or returned something that is not a probability table (for a
    regression model: not one finite number per row)."""


def _outside(value, spec) -> bool:
    if value is None or isinstance(value, bool | str) or value != value:
        return False
    return (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max)


@dataclass(frozen=True)
class Slot:
    """A loaded model with its validator and, when it compiles, its fast path (built once, at load).
    ``regression``: the model predicts numbers (``task == "regression"``), ``classes`` is empty."""

    model: LoadedModel
    validator: RowValidator
    version: str
    classes: tuple
    fast: FastPath | None = None
    regression: bool = False
    calibration: Calibration | None = None  # top-label confidence -> P(right): the estimate without labels

    @classmethod
    def of(cls, model: LoadedModel, fast_path: bool = True) -> Slot:
        classes = tuple(c.item() if isinstance(c, np.generic) else c for c in model.classes)
        fast = compile_fast_path(model) if fast_path else None
        return cls(
            model=model,
            validator=RowValidator(model.schema),
            version=str(model.version),
            classes=classes,
            fast=fast,
            regression=getattr(model, "task", None) == "regression",
            calibration=getattr(model, "calibration", None),
        )

    def _unscorable(self, batch: ValidatedBatch, rows: np.ndarray) -> None:
        """A 422 when every row the model could not score has a value outside its column's
        schema range (e.g. 1.8e308: valid JSON, finite, and beyond any float32 network);
        returns (the caller raises ModelFailure, a 500) when some such row looks normal."""
        errors = []
        for i in rows.tolist():
            found = [
                (spec.name, batch.columns[spec.name][i])
                for spec in self.validator.schema.features
                if spec.dtype in ("float", "int") and _outside(batch.columns[spec.name][i], spec)
            ]
            if not found:
                return
            for name, value in found:
                spec = self.validator.schema.column(name)
                errors.append({
                    "row": i, "field": name,
                    "error": f"{value!r} is far outside the schema's range [{spec.min}, {spec.max}]: "
                             "the model cannot score it",
                })
        shown = "; ".join(f"rows[{e['row']}].{e['field']}: {e['error']}" for e in errors[:5])
        raise RequestError(422, f"unscorable input: {shown}", errors[:20])

    def predict(self, batch: ValidatedBatch) -> tuple[list, np.ndarray | None]:
        """(labels, probabilities), checked; ModelFailure on anything odd (RequestError when
        the oddity is the input's: see ``_unscorable``). A regression model: (numbers, None)."""
        labels, proba, _ = self.predict_scored(batch)
        return labels, proba

    def predict_scored(self, batch: ValidatedBatch) -> tuple[list, np.ndarray | None, list | None]:
        """``predict`` plus each row's top probability (a list of floats; None for a regression
        model). A few rows are checked and ranked in Python over ``proba.tolist()``: on one row,
        numpy's isfinite/all/argmax/max calls cost more than the network they follow."""
        if self.regression:
            return self.predict_values(batch), None, None
        n = batch.n_rows
        try:
            if self.fast is not None:
                proba = self.fast.predict_proba(batch.columns, n)
            else:
                proba = np.asarray(self.model.predict_proba(batch.frame), dtype=float)
        except Exception as e:
            raise ModelFailure(f"version {self.version}: predict_proba failed: {type(e).__name__}: {e}") from e
        if proba.shape != (n, len(self.classes)):
            raise ModelFailure(
                f"version {self.version}: predict_proba gave shape {proba.shape}, "
                f"expected {(n, len(self.classes))}"
            )
        classes = self.classes
        if n <= SMALL_BATCH:
            ranked = self._ranked(proba)
            if ranked is not None:
                return ranked[0], proba, ranked[1]
        finite = np.isfinite(proba)
        if not finite.all():
            self._unscorable(batch, np.flatnonzero(~finite.all(axis=1)))
            raise ModelFailure(f"version {self.version}: predict_proba gave non-finite probabilities")
        return [classes[i] for i in proba.argmax(axis=1).tolist()], proba, proba.max(axis=1).tolist()

    def _ranked(self, proba: np.ndarray) -> tuple[list, list] | None:
        """(labels, top probabilities) of a few rows in plain Python; None when a row holds a NaN or inf."""
        classes = self.classes
        labels, top = [], []
        for row in proba.tolist():
            best = max(row, default=math.nan)
            if not (math.isfinite(best) and math.isfinite(sum(row))):  # a NaN or inf anywhere: not both
                return None
            labels.append(classes[row.index(best)])  # the first of equal maxima, as argmax
            top.append(best)
        return labels, top

    def predict_rows(self, batches: list[ValidatedBatch]) -> list[tuple[list, np.ndarray | None, list | None]]:
        """``predict_scored`` of several one-row batches (concurrent requests the service batches,
        ``ratchet.serving.transport``) in one forward of the fast path: each batch's (labels,
        probabilities, top probabilities). ModelFailure on anything odd, and the caller then predicts
        each batch alone, for its own answer or error (``_unscorable``'s 422 names one request's row)."""
        m = len(batches)
        try:
            out = self.fast.predict_rows([b.columns for b in batches])
        except Exception as e:
            raise ModelFailure(f"version {self.version}: batched forward failed: {type(e).__name__}: {e}") from e
        if self.regression:
            if out.shape != (m,) or not np.isfinite(out).all():
                raise ModelFailure(f"version {self.version}: batched forward gave shape {out.shape} or non-finite numbers")
            return [([v], None, None) for v in out.tolist()]
        ranked = self._ranked(out) if out.shape == (m, len(self.classes)) else None
        if ranked is None:
            raise ModelFailure(f"version {self.version}: batched forward gave shape {out.shape} or non-finite probabilities")
        return [([label], out[i:i + 1], [top]) for i, (label, top) in enumerate(zip(*ranked, strict=True))]

    def predict_values(self, batch: ValidatedBatch) -> list[float]:
        """A regression model's numbers (one finite float per row), checked as ``predict``."""
        n = batch.n_rows
        try:
            if self.fast is not None:
                values = self.fast.predict_values(batch.columns, n)
            else:
                values = np.asarray(self.model.predict(batch.frame), dtype=np.float64)
        except Exception as e:
            raise ModelFailure(f"version {self.version}: predict failed: {type(e).__name__}: {e}") from e
        if values.shape != (n,):
            raise ModelFailure(f"version {self.version}: predict gave shape {values.shape}, expected {(n,)}")
        finite = np.isfinite(values)
        if not finite.all():
            self._unscorable(batch, np.flatnonzero(~finite))
            raise ModelFailure(f"version {self.version}: predict gave non-finite numbers")
        return values.tolist()


# A request's steps (``PredictHandler.predict_steps``): a generator that yields the forward it needs,
# ``(slot, batch)``, is sent ``slot.predict_scored(batch)`` (or thrown what it raised), and returns its
# response (None: the request goes the ASGI way). Who runs the forward decides whether it is shared.
Steps = Generator[tuple[Slot, ValidatedBatch], object, object]

# rows of one-row requests one shared forward takes at most: past a few dozen the per-row cost no
# longer falls (benchmarks: TabM 23 us for one row, 8.5 a row for 8, 7.1 for 16) and the first
# request would wait for the arithmetic of the others
BATCH_MAX_ROWS = 32


def forward(slot: Slot, batch: ValidatedBatch) -> object:
    """``slot.predict_scored(batch)``, or the exception it raised (to throw into the request's steps)."""
    try:
        return slot.predict_scored(batch)
    except Exception as e:
        return e


def resume(steps: Steps, result: object) -> object:
    """Send ``result`` (a forward's, or the exception it raised) into ``steps`` and run any further
    forward at once: the response."""
    try:
        while True:
            need = steps.throw(result) if isinstance(result, BaseException) else steps.send(result)
            result = forward(*need)
    except StopIteration as stop:
        return stop.value


def run_steps(steps: Steps) -> object:
    """A request's steps with every forward run at once, alone: the response (sending None starts
    a generator as ``next`` does)."""
    return resume(steps, None)


def forward_all(needs: list[tuple[Slot, ValidatedBatch]]) -> list[object]:
    """The forwards several requests' steps asked for, each result (``predict_scored``'s) or the
    exception it raised, in order. The one-row batches of one slot with a fast path share a forward
    (``Slot.predict_rows``, up to ``BATCH_MAX_ROWS`` rows); when it fails, each is predicted alone,
    so that every request gets its own answer or error."""
    if len(needs) == 1:  # a lone request (the common case at low load): no grouping
        return [forward(*needs[0])]
    out: list[object] = [None] * len(needs)
    shared: dict[int, list[int]] = {}
    for i, (slot, batch) in enumerate(needs):
        if batch.n_rows == 1 and slot.fast is not None:
            shared.setdefault(id(slot), []).append(i)
        else:
            out[i] = forward(slot, batch)
    for idx in shared.values():
        slot = needs[idx[0]][0]
        for at in range(0, len(idx), BATCH_MAX_ROWS):
            chunk = idx[at:at + BATCH_MAX_ROWS]
            results = None
            if len(chunk) > 1:
                try:
                    results = slot.predict_rows([needs[i][1] for i in chunk])
                except ModelFailure:
                    pass  # each alone below
            if results is None:
                results = [forward(*needs[i]) for i in chunk]
            for i, result in zip(chunk, results, strict=True):
                out[i] = result
    return out


@dataclass(frozen=True)
class Snapshot:
    champion: Slot | None = None
    challenger: Slot | None = None
    traffic: Traffic = field(default_factory=Traffic)

    @property
    def ready(self) -> bool:
        return self.champion is not None

    def versions(self) -> dict[str, str | None]:
        return {
            "champion": self.champion.version if self.champion else None,
            "challenger": self.challenger.version if self.challenger else None,
        }


@dataclass
class ReloadResult:
    changed: list[str]
    errors: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.errors


class ServingRuntime:
    def __init__(
        self,
        provider: ModelProvider,
        cfg: ServingConfig,
        state_dir: Path,
        *,
        watch_interval_s: float | None = 1.0,
        profile_window_s: float = 3600.0,
        feedback_capacity: int = 100_000,
        shadow_queue: int = 256,
        profile_process: bool = False,
    ):
        self.provider = provider
        self.cfg = cfg
        self.state_dir = Path(state_dir)
        self.traffic_path = self.state_dir / TRAFFIC_FILE
        self.watch_interval_s = watch_interval_s
        self.metrics = ServingMetrics()
        self.feedback = FeedbackStore(feedback_capacity)
        self.profiler = LiveProfiler(
            self.state_dir / "profiles",
            batch_rows=cfg.profile_batch_rows,
            flush_s=cfg.profile_flush_s,
            window_s=profile_window_s,
            metrics=self.metrics,
            process=profile_process,
        )
        self.snapshot = Snapshot()
        self.loaded_once = False
        self.last_error: str | None = None
        self._reload_lock = threading.Lock()
        self._seen_versions: dict[str, str | None] | None = None
        self._seen_traffic_sig: tuple | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._shadow_pool: ThreadPoolExecutor | None = None
        self._shadow_slots = threading.BoundedSemaphore(shadow_queue)
        self._pool_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._started = False

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._started = True
        try:
            self.reload()
        except Exception as e:  # not ready; the watcher retries
            log.exception("initial model load failed")
            self.last_error = f"{type(e).__name__}: {e}"
        self.profiler.start()
        if self.watch_interval_s and (self._watcher is None or not self._watcher.is_alive()):
            self._stop.clear()
            self._watcher = threading.Thread(target=self._watch, name="ratchet-watcher", daemon=True)
            self._watcher.start()

    def stop(self) -> None:
        self._started = False
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
            self._watcher = None
        try:
            self.drain_shadow()
        except Exception:
            log.exception("shadow predictions did not finish")
        with self._pool_lock:
            if self._shadow_pool is not None:
                self._shadow_pool.shutdown(wait=True)
                self._shadow_pool = None
        self.profiler.stop(flush=True)

    @property
    def is_started(self) -> bool:
        return self._started

    def ensure_started(self) -> None:
        """Start on first use when the app runs without its lifespan (a bare TestClient)."""
        with self._start_lock:
            if not self._started:
                self.start()

    def flush(self) -> list[Path]:
        """Finish pending shadow predictions, then profile and persist all buffered rows."""
        self.drain_shadow()
        return self.profiler.flush()

    # ------------------------------------------------------------ reload
    def _traffic_sig(self) -> tuple | None:
        try:
            st = os.stat(self.traffic_path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self, force: bool = False) -> ReloadResult:
        """Re-read the traffic file; load the models whose alias moved; swap atomically.

        A model that fails to load keeps the old one in its slot (and is reported).
        An unset champion alias keeps the loaded champion (serving something beats a
        503 outage; reported in the result); an unset challenger removes it."""
        with self._reload_lock:
            errors: dict[str, str] = {}
            old = self.snapshot
            sig = self._traffic_sig()
            try:
                traffic = read_traffic(self.traffic_path)
            except (ValueError, OSError) as e:
                traffic = old.traffic
                errors["traffic"] = str(e)
            versions = self.provider.versions()
            self._seen_versions = dict(versions)
            self._seen_traffic_sig = sig
            slots = {"champion": old.champion, "challenger": old.challenger}
            loaded_by_version = {s.version: s for s in slots.values() if s is not None}
            new = dict(slots)
            changed = []
            for alias in ALIASES:
                want = versions.get(alias)
                cur = slots[alias]
                if want is None:
                    if cur is not None and alias == "challenger":
                        new[alias] = None
                        changed.append(alias)
                    elif cur is not None:
                        errors[alias] = (
                            f"alias {alias!r} is unset in the registry; still serving version {cur.version}"
                        )
                    continue
                want = str(want)
                if cur is not None and cur.version == want and not force:
                    continue
                if want in loaded_by_version and not force:  # promotion/rollback between loaded models
                    new[alias] = loaded_by_version[want]
                else:
                    try:
                        model = self.provider.load(alias)
                        new[alias] = Slot.of(model, self.cfg.fast_path) if model is not None else None
                    except Exception as e:
                        log.exception("loading %s (version %s) failed", alias, want)
                        errors[alias] = f"loading version {want} failed: {type(e).__name__}: {e}"
                        continue
                    if new[alias] is None and alias == "champion" and cur is not None:
                        new[alias] = cur
                        errors[alias] = "provider returned no champion; still serving the loaded one"
                if new[alias] is not cur:
                    changed.append(alias)
            if changed or traffic != old.traffic:
                self.snapshot = Snapshot(
                    champion=new["champion"], challenger=new["challenger"], traffic=traffic
                )
            self.loaded_once = True
            self._publish()
            self.last_error = "; ".join(f"{k}: {v}" for k, v in errors.items()) or None
            self.metrics.reloads.labels("error" if errors else "ok").inc()
            if changed:
                log.info("serving %s (changed: %s)", self.snapshot.versions(), changed)
            return ReloadResult(changed=changed, errors=errors)

    def set_traffic(self, traffic: Traffic) -> Traffic:
        """Write the traffic file atomically and apply it now."""
        with self._reload_lock:
            write_traffic(self.traffic_path, traffic)
            self._seen_traffic_sig = self._traffic_sig()
            old = self.snapshot
            self.snapshot = Snapshot(champion=old.champion, challenger=old.challenger, traffic=traffic)
            self._publish()
            return traffic

    def _publish(self) -> None:
        s = self.snapshot
        v = s.versions()
        self.metrics.set_models(v["champion"], v["challenger"], s.traffic.challenger_share, s.traffic.shadow)

    def changed_since_last_look(self) -> bool:
        if self._traffic_sig() != self._seen_traffic_sig:
            return True
        return self.provider.versions() != self._seen_versions

    def _watch(self) -> None:
        """Reload on a change; after a failed reload retry with backoff (up to 30 s)."""
        failures, next_retry = 0, 0.0
        while not self._stop.wait(self.watch_interval_s):
            try:
                due = (self.last_error or not self.loaded_once) and time.monotonic() >= next_retry
                if due or self.changed_since_last_look():
                    self.reload()
                if self.last_error:
                    failures += 1
                    next_retry = time.monotonic() + min(30.0, self.watch_interval_s * 2**failures)
                else:
                    failures = 0
            except Exception as e:
                msg = f"{type(e).__name__}: {e}"
                if msg != self.last_error:
                    log.warning("background reload failed: %s", msg)
                self.last_error = msg
                failures += 1
                next_retry = time.monotonic() + min(30.0, self.watch_interval_s * 2**failures)

    # ------------------------------------------------------------ shadow
    def submit_shadow(self, fn, *args) -> bool:
        """Run ``fn(*args)`` off the request path; False (dropped) when the queue is full."""
        if not self._shadow_slots.acquire(blocking=False):
            return False
        with self._pool_lock:
            if self._shadow_pool is None:
                self._shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ratchet-shadow")
            fut = self._shadow_pool.submit(fn, *args)
        fut.add_done_callback(lambda _f: self._shadow_slots.release())
        return True

    def drain_shadow(self, timeout: float = 30.0) -> None:
        with self._pool_lock:
            pool = self._shadow_pool
            if pool is None:
                return
            marker: Future = pool.submit(lambda: None)  # one worker: FIFO, so this runs last
        marker.result(timeout=timeout)
