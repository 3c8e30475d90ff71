"""Live profiling off the request path.

The request path only appends ``(time, version, inputs, predictions, confidence)``
to an in-memory buffer (with a worker process: encoded as bytes every ``ENCODE_ITEMS`` items,
:func:`_encode`, so that shipping a pass to the worker costs the server's GIL next to nothing). A background thread takes the buffer when it holds
``batch_rows`` rows or every ``flush_s`` seconds, joins each model version's rows into
columns and profiles them with whylogs (one ``why.log`` per version per micro-batch),
in the thread itself or, with ``process=True``, in a worker process
(``python -m ratchet.serving.profiler``, fed over a pipe) whose CPU time never holds the
server's GIL; it merges the result into the profile of its time window and writes it to
``<root>/<version>/<window-start>.bin`` (atomically; window start as
``YYYYmmddTHHMMSSZ`` UTC). A window file that already exists when this process
first touches the window (a restart) is merged in, not overwritten. One process
should write a given ``root``.

The profiled frame is the model's input columns plus ``prediction`` (the label)
and ``prediction_confidence`` (the top probability); a feature that is itself
named so gets the prefix ``ratchet_``.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import pickle
import re
import select
import struct
import subprocess
import sys
import threading
import time
from itertools import chain
from operator import itemgetter
from pathlib import Path

import numpy as np
import pandas as pd

from ratchet.core.files import atomic_write

log = logging.getLogger(__name__)

PREDICTION_COLUMN = "prediction"
CONFIDENCE_COLUMN = "prediction_confidence"


def _profile_fns():
    """(profile_frame, serialize, deserialize, merge two views): from ``ratchet.data.profiling``,
    or plain whylogs when that module is absent."""
    os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")  # no telemetry from a server
    try:
        from ratchet.data.profiling import (
            deserialize_profile,
            merge_profiles,
            profile_frame,
            serialize_profile,
        )

        def merge(a, b):
            return merge_profiles([a, b])

    except ImportError:
        import whylogs as why
        from whylogs.core import DatasetProfileView

        def profile_frame(df: pd.DataFrame):
            return why.log(pandas=df).view()

        def serialize_profile(view) -> bytes:
            return view.serialize()

        deserialize_profile = DatasetProfileView.deserialize

        def merge(a, b):
            return a.merge(b)

    return profile_frame, serialize_profile, deserialize_profile, merge


def safe_name(version: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(version)) or "_"


def window_label(window_start: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(window_start))


class ProfileNotWritten(Exception):
    """A window's profile could not be written (disk full, read-only): logged once by the store."""


NOT_WRITTEN = "not written"  # how a worker's result says so


class _WindowStore:
    """Profiles merged per (version, window start) and persisted: the part of profiling that
    runs in the profiler thread, or in the worker process (``LiveProfiler(process=True)``)."""

    def __init__(self, root: Path, window_s: float):
        self.root = Path(root)
        self.window_s = window_s
        self._views: dict[tuple[str, float], object] = {}
        self._fns = None
        self.written: dict[tuple[str, float], Path] = {}
        self._failing: int | None = None  # the errno of the write failure logged, until one succeeds

    def add(self, key: tuple[str, float], frame: pd.DataFrame) -> Path:
        if self._fns is None:
            self._fns = _profile_fns()
        profile_frame, serialize, deserialize, merge = self._fns
        version, ws = key
        view = profile_frame(frame)
        path = self.root / safe_name(version) / f"{window_label(ws)}.bin"
        prev = self._views.get(key)
        if prev is None and path.exists():  # written by an earlier run (or worker) of this process
            try:
                prev = deserialize(path.read_bytes())
            except Exception:
                aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
                log.warning("unreadable profile %s: moved to %s", path, aside)
                os.replace(path, aside)
        if prev is not None:
            view = merge(prev, view)
        self._views[key] = view  # kept: the next write of this window carries these rows
        try:
            atomic_write(path, serialize(view))
        except OSError as e:
            self._write_failed(path, e)
            raise ProfileNotWritten(f"{e.filename or path}: {e.strerror or e}") from e
        if self._failing is not None:
            log.warning("live profiles are written again under %s", self.root)
            self._failing = None
        self.written[key] = path
        return path

    def _write_failed(self, path: Path, e: OSError) -> None:
        """A full or read-only disk: said once (per kind of failure), not at every flush."""
        if self._failing != e.errno:
            self._failing = e.errno
            log.error("cannot write live profiles under %s (%s: %s): predictions go on; this window's "
                      "profile stays in memory until a write succeeds", self.root, e.filename or path, e.strerror or e)

    def evict(self) -> None:
        """Keep in memory only the current and previous window of each version."""
        oldest = (time.time() // self.window_s - 1) * self.window_s
        for key in [k for k in self._views if k[1] < oldest]:
            del self._views[key]
        for key in [k for k in self.written if k[1] < oldest]:
            del self.written[key]


def _join(parts: list) -> tuple[dict[str, list], list[str], list, np.ndarray]:
    """Buffered parts of one version, ``(time, version, names, rows, predictions, confidences)``
    (``rows`` a tuple of value tuples, or a DataFrame with ``names`` None), as columns:
    (columns, names, predictions, confidences). Consecutive parts with the same names are
    joined by C loops (``chain``, ``zip``): thousands of single-row parts cost a few ms."""
    runs: list[list] = []  # [names, [rows, ...]]
    for _, _, names, rows, _, _ in parts:
        if names is None:  # a DataFrame
            names = [str(c) for c in rows.columns]
            values = [rows[c].tolist() for c in rows.columns]
            runs.append([names, [list(zip(*values, strict=True)) if values else [()] * len(rows)]])
        elif runs and (runs[-1][0] is names or runs[-1][0] == names):
            runs[-1][1].append(rows)
        else:
            runs.append([names, [rows]])
    cols: dict[str, list] = {}
    all_names: list[str] = []
    n = 0
    for names, row_groups in runs:
        rows = list(chain.from_iterable(row_groups))
        columns = list(zip(*rows, strict=True)) if rows and names else [() for _ in names]
        for name, values in zip(names, columns, strict=True):
            if name not in cols:
                cols[name] = [None] * n  # a column earlier parts lacked
                all_names.append(name)
            cols[name].extend(values)
        n += len(rows)
        for col in cols.values():  # a column this run lacked
            if len(col) < n:
                col.extend([None] * (n - len(col)))
    preds = list(chain.from_iterable(map(itemgetter(4), parts)))
    conf = np.fromiter(chain.from_iterable(map(itemgetter(5), parts)), dtype=float, count=len(preds))
    return cols, all_names, preds, conf


def _build_frame(cols: dict[str, list], names: list[str], preds: list, conf: np.ndarray) -> pd.DataFrame:
    """One DataFrame: the inputs, ``prediction`` and ``prediction_confidence``."""
    pcol = PREDICTION_COLUMN if PREDICTION_COLUMN not in cols else "ratchet_" + PREDICTION_COLUMN
    ccol = CONFIDENCE_COLUMN if CONFIDENCE_COLUMN not in cols else "ratchet_" + CONFIDENCE_COLUMN
    frame = pd.DataFrame(cols, columns=names)
    frame[pcol] = preds
    frame[ccol] = conf
    return frame


class LiveProfiler:
    """``record()`` on the request path; whylogs in a background thread, or with ``process=True``
    in a worker process (its own interpreter and GIL: a whylogs pass, ~0.1-0.2 s of CPU, then
    never holds up the event loop; the thread only joins columns and ships them). A worker
    that dies is started again (up to ``max_restarts`` times, then profiling goes on in the thread)."""

    def __init__(
        self,
        root: Path,
        batch_rows: int = 500,
        flush_s: float = 5.0,
        window_s: float = 3600.0,
        max_pending_rows: int = 200_000,
        metrics=None,
        process: bool = False,
        max_restarts: int = 3,
    ):
        self.root = Path(root)
        self.batch_rows = batch_rows
        self.flush_s = flush_s
        self.window_s = window_s
        self.max_pending_rows = max_pending_rows
        self.metrics = metrics
        self.process = process
        self.max_restarts = max_restarts
        self._buf: list[tuple] = []
        # with a worker process the items are encoded (_encode) every ENCODE_ITEMS, ready to ship
        self._wire = bytearray()
        self._names: dict[int, tuple] = {}
        self._pending = 0
        self._lock = threading.Lock()  # _buf, _wire, _pending, _due
        self._due = False  # the profiler thread was woken for a full batch and has not flushed yet
        self._cond = threading.Condition()
        self._work_lock = threading.Lock()  # one profiling pass at a time
        self._store = _WindowStore(self.root, window_s)
        self._worker: _WorkerProcess | None = None
        self._worker_failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written: dict[tuple[str, float], Path] = {}

    # ------------------------------------------------------------ request path
    def record(self, version: str, inputs, predictions: list, confidence: np.ndarray) -> bool:
        """Queue rows for profiling (O(1) per row). False when the buffer is full.

        ``inputs`` is a DataFrame, or validated columns: an object with ``columns``
        (``{name: [value, ...]}``), ``names`` and ``n_rows`` (a ``ValidatedBatch``). Validated
        rows are kept as tuples of plain values: the garbage collector stops tracking those,
        so thousands of buffered requests add next to nothing to a full collection (the
        ValidatedBatch itself, a dozen tracked objects, would make each one scan them all)."""
        if type(inputs) is pd.DataFrame or isinstance(inputs, pd.DataFrame):
            n, names, rows = len(inputs), None, inputs
        else:
            n, names = inputs.n_rows, self._names_tuple(inputs.names)
            columns = inputs.columns
            if n == 1:
                rows = (tuple([columns[c][0] for c in names]),)
            else:
                rows = tuple(zip(*[columns[c] for c in names], strict=True)) if names else ((),) * n
        if type(confidence) is list:
            conf = tuple(confidence)
        elif type(confidence) is np.ndarray and confidence.ndim == 1:
            conf = tuple(confidence.tolist())
        else:
            conf = tuple(np.asarray(confidence, dtype=float).reshape(-1).tolist())
        item = (time.time(), version, names, rows, tuple(predictions), conf)
        # the hand-off: one uncontended plain Lock (the event loop, the shadow thread and worker
        # threads all record); the profiler thread's Condition is taken only when a batch is due
        with self._lock:
            if self._pending + n > self.max_pending_rows:
                dropped = True
            else:
                dropped = False
                self._buf.append(item)
                if self._wire_mode and len(self._buf) >= ENCODE_ITEMS:
                    # in the recording thread (the event loop, mostly): ~0.2 ms once every 500
                    # items, where the profiler thread would take the GIL from it to do the same
                    self._wire += _encode(self._buf)
                    self._buf = []
                self._pending += n
                wake = self._pending >= self.batch_rows and not self._due
                if wake:
                    self._due = True
        if dropped:
            if self.metrics is not None:
                self.metrics.profile_dropped.inc(n)
            return False
        if wake:
            with self._cond:
                self._cond.notify()
        return True

    def _names_tuple(self, names) -> tuple:
        """``names`` as a tuple, one per list object (a validator's): with a tuple there,
        the buffered item itself is untracked by the collector too."""
        if type(names) is tuple:
            return names
        hit = self._names.get(id(names))
        if hit is None or hit[0] is not names:
            if len(self._names) > 64:
                self._names.clear()
            hit = self._names[id(names)] = (names, tuple(names))  # holding the list keeps its id
        return hit[1]

    @property
    def _wire_mode(self) -> bool:
        """Items are encoded for the worker process: one is used and has not failed for good
        (after that, items stay as they are and are profiled in this process)."""
        return self.process and self._worker_failures <= self.max_restarts

    @property
    def pending_rows(self) -> int:
        return self._pending

    @property
    def worker_pid(self) -> int | None:
        """The worker process's id while one runs (``process=True``)."""
        w = self._worker
        return w.pid if w is not None and w.alive else None

    # ------------------------------------------------------------ worker
    def start(self) -> None:
        if self.process and self._worker is None and self._worker_failures <= self.max_restarts:
            self._start_worker()
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ratchet-profiler", daemon=True)
        self._thread.start()

    def _start_worker(self) -> None:
        try:
            self._worker = _WorkerProcess(self.root, self.window_s)
        except Exception:
            log.exception("could not start the profiling worker process; profiling in this process")
            self._worker_failures = self.max_restarts + 1
            self._worker = None

    def stop(self, flush: bool = True) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        try:
            if flush:
                self.flush()
        finally:
            with self._work_lock:
                if self._worker is not None:
                    self._worker.close()
                    self._worker = None

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stop.is_set() or self.pending_rows >= self.batch_rows, timeout=self.flush_s
                )
            if self._stop.is_set():
                return
            try:
                self.flush()
            except Exception:  # never let the worker die
                log.exception("live profiling failed")

    def flush(self) -> list[Path]:
        """Profile everything buffered now and persist it; returns the files written."""
        with self._work_lock:
            with self._lock:
                items, wire = self._buf, self._wire
                self._buf, self._wire, self._pending, self._due = [], bytearray(), 0, False
            if not items and not wire:
                return []
            # the worker gets the bytes the request path encoded and decodes, groups and joins
            # them itself: this thread encodes the last few hundred items and writes the bytes
            # to the pipe, with the GIL released
            results = None
            if self._wire_mode:
                if items:
                    wire += _encode(items)
                    items = []
                results = self._in_worker(wire)
            if results is None:  # in this thread (what was encoded before the worker failed too)
                results = _profile_items(self._store, _decode(wire) + items)
            written = []
            for key, path, error, n in results:
                if path is not None:
                    path = Path(path)
                    written.append(path)
                    self.written[key] = path
                    if self.metrics is not None:
                        self.metrics.profile_rows.labels(key[0]).inc(n)
                else:
                    if self.process and not error.startswith(NOT_WRITTEN):  # the worker logged that once
                        log.error("profiling %d rows of version %s failed: %s", n, key[0], error)
                    if self.metrics is not None:
                        self.metrics.profile_dropped.inc(n)
            oldest = (time.time() // self.window_s - 1) * self.window_s
            for key in [k for k in self.written if k[1] < oldest]:
                del self.written[key]
            return written

    def _in_worker(self, wire: bytes | bytearray) -> list | None:
        """Results from the worker process; None: profile here instead (no worker to be had)."""
        if self._worker is None or not self._worker.alive:
            if self._worker is not None:
                self._worker.close()
                self._worker = None
                self._worker_failures += 1
            if self._worker_failures > self.max_restarts:
                return None
            self._start_worker()
            if self._worker is None:
                return None
        try:
            return self._worker.call(wire)
        except Exception as e:
            self._worker_failures += 1
            counts = _rows_by_key(_decode(wire), self.window_s)
            log.error("the profiling worker failed (%s: %s); %d rows not profiled%s", type(e).__name__, e,
                      sum(counts.values()),
                      "" if self._worker_failures <= self.max_restarts else "; profiling in this process from now")
            self._worker.close()
            self._worker = None
            return [(key, None, f"worker failed: {type(e).__name__}: {e}", n) for key, n in counts.items()]


def _groups(items: list, window_s: float) -> dict[tuple[str, float], list]:
    """Buffered items ``(time, version, names, rows, predictions, confidences)`` by (version,
    window start)."""
    groups: dict[tuple[str, float], list] = {}
    for item in items:
        key = (item[1], (item[0] // window_s) * window_s)
        group = groups.get(key)
        if group is None:
            group = groups[key] = []
        group.append(item)
    return groups


def _rows_by_key(items: list, window_s: float) -> dict[tuple[str, float], int]:
    return {key: sum(len(it[4]) for it in parts) for key, parts in _groups(items, window_s).items()}


def _profile_items(store: _WindowStore, items: list) -> list[tuple]:
    """Profile buffered items into ``store``, one pass per (version, window): a list of
    (key, path or None, error or None, rows)."""
    results = []
    for key, parts in _groups(items, store.window_s).items():
        joined = _join(parts)
        n = len(joined[2])
        try:
            results.append((key, store.add(key, _build_frame(*joined)), None, n))
        except ProfileNotWritten as e:
            results.append((key, None, f"{NOT_WRITTEN}: {e}", n))
        except Exception as e:
            log.exception("profiling %d rows of version %s failed", n, key[0])
            results.append((key, None, f"{type(e).__name__}: {e}", n))
    store.evict()
    return results


# ---------------------------------------------------------------- worker process
# Frames on the pipes: 8-byte big-endian length, then a pickle. Parent -> worker: the number of
# bytes that follow, then the buffered items (time, version, names, rows, predictions,
# confidences) as the request path encoded them (:func:`_encode`); or None to exit.
# Worker -> parent: a list of (key, path or None, error or None, rows). The items used to go as
# pickled lists of 500: pickle holds the GIL from start to end, ~0.3 ms a list, and a pass of
# 50,000 rows made the event loop wait for it a hundred times (~2 ms of /predict's p99 at 11,000
# requests/s, docs/scale.md).
_HEADER = struct.Struct(">Q")
# encoded items: a tag (b"M" marshal, b"P" pickle) and the payload's length, then the payload: a
# list of items
_RECORD = struct.Struct("<cI")
ENCODE_ITEMS = 500  # items encoded at a time on the request path: ~0.2 ms, once every 500 requests
PIPE_BYTES = 1 << 20  # the pipe to the worker (Linux): a pass of ~7 MB in a few writes, not hundreds
WORKER_REPLY_TIMEOUT_S = 120.0  # a pass takes well under a second; a hung worker is replaced


def _encode(items: list) -> bytes:
    """Buffered items as bytes (~0.4 us an item of a single row of ten columns). marshal (the
    interpreter's own format: the worker is the same interpreter) is the standard library's
    fastest writer of plain tuples, strings and numbers, and writes a names tuple the items
    share once; a list it cannot write (a DataFrame's rows, a numpy scalar) is pickled."""
    try:
        body, tag = marshal.dumps(items), b"M"
    except ValueError:
        body, tag = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL), b"P"
    return _RECORD.pack(tag, len(body)) + body


def _decode(data: bytes | bytearray) -> list:
    """The items :func:`_encode` wrote, in order."""
    items, view, pos, end = [], memoryview(data), 0, len(data)
    while pos < end:
        tag, n = _RECORD.unpack_from(view, pos)
        pos += _RECORD.size
        chunk = view[pos:pos + n]
        items.extend(marshal.loads(chunk) if tag == b"M" else pickle.loads(chunk))
        pos += n
    return items


def _write_frame(f, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(_HEADER.pack(len(data)))
    f.write(data)
    f.flush()


def _read_exact(f, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            raise EOFError("the profiling worker's pipe closed")
        out += chunk
    return bytes(out)


def _read_frame(f):
    (n,) = _HEADER.unpack(_read_exact(f, _HEADER.size))
    return pickle.loads(_read_exact(f, n))


class _WorkerProcess:
    """``python -m ratchet.serving.profiler ROOT WINDOW_S``, spoken to over its stdin/stdout."""

    def __init__(self, root: Path, window_s: float):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [*sys.path, env.get("PYTHONPATH", "")] if p)
        env.setdefault("WHYLOGS_NO_ANALYTICS", "True")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ratchet.serving.profiler", str(root), repr(float(window_s))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
        )
        self.pid = self.proc.pid
        with contextlib.suppress(AttributeError, OSError):  # Linux only; a smaller pipe still works
            import fcntl

            fcntl.fcntl(self.proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, wire: bytes | bytearray) -> list:
        _write_frame(self.proc.stdin, len(wire))
        self.proc.stdin.write(wire)  # raw bytes: no Python work, the GIL released in each write
        self.proc.stdin.flush()
        if hasattr(select, "select"):
            ready, _, _ = select.select([self.proc.stdout], [], [], WORKER_REPLY_TIMEOUT_S)
            if not ready:
                raise TimeoutError(f"no answer in {WORKER_REPLY_TIMEOUT_S:.0f} s")
        return _read_frame(self.proc.stdout)

    def close(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            try:
                _write_frame(self.proc.stdin, None)
                self.proc.stdin.close()
                self.proc.wait(timeout=timeout)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError, ValueError):
                f.close()


def _worker_main(argv: list[str]) -> int:
    """The worker: profile what the parent sends until it sends None or its pipe closes."""
    root, window_s = Path(argv[0]), float(argv[1])
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the frames
    inp = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    with contextlib.suppress(OSError, AttributeError):
        os.nice(5)  # the server's own process comes first on a busy machine
    logging.basicConfig(level=logging.WARNING, format="ratchet-profiler-worker: %(levelname)s %(message)s")
    store = _WindowStore(root, window_s)
    while True:
        try:
            n_bytes = _read_frame(inp)
            if n_bytes is None:
                return 0
            items = _decode(_read_exact(inp, n_bytes))
        except EOFError:
            return 0
        results = [(key, None if path is None else str(path), error, n)
                   for key, path, error, n in _profile_items(store, items)]
        _write_frame(out, results)


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
