"""Live profiling off the request path.

The request path only appends ``(time, version, inputs, predictions, confidence)``
to an in-memory buffer. A background thread takes the buffer when it holds
``batch_rows`` rows or every ``flush_s`` seconds, profiles each model version's
rows with whylogs (one ``why.log`` per version per micro-batch), merges the result
into the profile of its time window and writes it to
``<root>/<version>/<window-start>.bin`` (atomically; window start as
``YYYYmmddTHHMMSSZ`` UTC). A window file that already exists when this process
first touches the window (a restart) is merged in, not overwritten. One process
should write a given ``root``.

The profiled frame is the model's input columns plus ``prediction`` (the label)
and ``prediction_confidence`` (the top probability); a feature that is itself
named so gets the prefix ``ratchet_``.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

PREDICTION_COLUMN = "prediction"
CONFIDENCE_COLUMN = "prediction_confidence"


def _profile_fns():
    """(profile_frame, serialize, deserialize, merge two views): from ``ratchet.profiling``,
    or plain whylogs when that module is absent."""
    os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")  # no telemetry from a server
    try:
        from ratchet.profiling import deserialize_profile, merge_profiles, profile_frame, serialize_profile

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


class LiveProfiler:
    def __init__(
        self,
        root: Path,
        batch_rows: int = 500,
        flush_s: float = 5.0,
        window_s: float = 3600.0,
        max_pending_rows: int = 200_000,
        metrics=None,
    ):
        self.root = Path(root)
        self.batch_rows = batch_rows
        self.flush_s = flush_s
        self.window_s = window_s
        self.max_pending_rows = max_pending_rows
        self.metrics = metrics
        self._buf: list[tuple] = []
        self._pending = 0
        self._cond = threading.Condition()
        self._work_lock = threading.Lock()  # one profiling pass at a time
        self._views: dict[tuple[str, float], object] = {}
        self._fns = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written: dict[tuple[str, float], Path] = {}

    # ------------------------------------------------------------ request path
    def record(self, version: str, inputs, predictions: list, confidence: np.ndarray) -> bool:
        """Queue rows for profiling (O(1), no copy). False when the buffer is full.

        ``inputs`` is a DataFrame, or validated columns: an object with ``columns``
        (``{name: [value, ...]}``), ``names`` and ``n_rows`` (a ``ValidatedBatch``)."""
        n = len(inputs) if isinstance(inputs, pd.DataFrame) else inputs.n_rows
        with self._cond:
            if self._pending + n > self.max_pending_rows:
                if self.metrics is not None:
                    self.metrics.profile_dropped.inc(n)
                return False
            self._buf.append((time.time(), version, inputs, predictions, confidence))
            self._pending += n
            if self._pending >= self.batch_rows:
                self._cond.notify()
        return True

    @property
    def pending_rows(self) -> int:
        return self._pending

    # ------------------------------------------------------------ worker
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ratchet-profiler", daemon=True)
        self._thread.start()

    def stop(self, flush: bool = True) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if flush:
            self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stop.is_set() or self._pending >= self.batch_rows, timeout=self.flush_s
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
            with self._cond:
                items, self._buf, self._pending = self._buf, [], 0
            if not items:
                return []
            groups: dict[tuple[str, float], list] = {}
            for ts, version, inputs, preds, conf in items:
                ws = (ts // self.window_s) * self.window_s
                groups.setdefault((version, ws), []).append((inputs, preds, conf))
            written = []
            for key, parts in groups.items():
                n = sum(len(p[1]) for p in parts)
                try:
                    written.append(self._profile_group(key, parts))
                    if self.metrics is not None:
                        self.metrics.profile_rows.labels(key[0]).inc(n)
                except Exception:
                    log.exception("profiling %d rows of version %s failed", n, key[0])
                    if self.metrics is not None:
                        self.metrics.profile_dropped.inc(n)
            self._evict()
            return written

    def _frame(self, parts: list) -> pd.DataFrame:
        """One frame for the parts (of one version): columns joined as lists, one DataFrame built."""
        cols: dict[str, list] = {}
        names: list[str] = []
        preds_all: list = []
        conf_all: list = []
        for inputs, preds, conf in parts:
            if isinstance(inputs, pd.DataFrame):
                part = {str(c): inputs[c].tolist() for c in inputs.columns}
            else:
                part = inputs.columns
            for name, values in part.items():
                col = cols.get(name)
                if col is None:
                    col = cols[name] = [None] * len(preds_all)  # a column earlier parts lacked
                    names.append(name)
                col.extend(values)
            n_after = len(preds_all) + len(preds)
            for col in cols.values():  # a column this part lacked
                if len(col) < n_after:
                    col.extend([None] * (n_after - len(col)))
            preds_all.extend(preds)
            conf_all.append(np.asarray(conf, dtype=float).reshape(-1))
        pcol = PREDICTION_COLUMN if PREDICTION_COLUMN not in cols else "ratchet_" + PREDICTION_COLUMN
        ccol = CONFIDENCE_COLUMN if CONFIDENCE_COLUMN not in cols else "ratchet_" + CONFIDENCE_COLUMN
        frame = pd.DataFrame(cols, columns=names)
        frame[pcol] = preds_all
        frame[ccol] = np.concatenate(conf_all) if conf_all else np.zeros(0)
        return frame

    def _profile_group(self, key: tuple[str, float], parts: list) -> Path:
        if self._fns is None:
            self._fns = _profile_fns()
        profile_frame, serialize, deserialize, merge = self._fns
        version, ws = key
        view = profile_frame(self._frame(parts))
        path = self.root / safe_name(version) / f"{window_label(ws)}.bin"
        prev = self._views.get(key)
        if prev is None and path.exists():  # written by an earlier run of this process
            try:
                prev = deserialize(path.read_bytes())
            except Exception:
                aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
                log.warning("unreadable profile %s: moved to %s", path, aside)
                os.replace(path, aside)
        if prev is not None:
            view = merge(prev, view)
        self._views[key] = view
        _atomic_write(path, serialize(view))
        self.written[key] = path
        return path

    def _evict(self) -> None:
        """Keep in memory only the current and previous window of each version."""
        oldest = (time.time() // self.window_s - 1) * self.window_s
        for key in [k for k in self._views if k[1] < oldest]:
            del self._views[key]
        for key in [k for k in self.written if k[1] < oldest]:
            del self.written[key]


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
