"""A pandas-free request path for models whose preprocessing is a fitted ColumnTransformer.

``Predictor.predict_proba(frame)`` spends ~10 ms per call in pandas and in the
ColumnTransformer's per-call bookkeeping, for a network that runs in ~0.1 ms.
For a model whose ``preprocessor`` is made of the parts ratchet builds
(``SimpleImputer``, ``StandardScaler``, ``OneHotEncoder(handle_unknown="ignore")``
in ``Pipeline``s), :func:`compile_fast_path` reads the fitted statistics once and
builds the feature matrix with numpy straight from the validated columns; the
model's own ``module`` (a torch network returning logits) then runs under
``torch.inference_mode``. A network that is a plain ``Sequential`` of
``Linear``/``ReLU``/``Dropout`` layers is also evaluated with numpy matmuls, and so is a module
that gives its own numpy forward pass (``numpy_forward()``: the MLP over piecewise-linear
embeddings and TabM, ``ratchet.training.model.families``); a module with neither runs in torch.
One row (a single-row ``/predict``, or the single rows of concurrent requests that the service
batches into one forward) takes a shorter way still: each feature row is built in a Python list,
the rows stacked, and each layer of a plain MLP is one numpy call with its bias folded into the
weights; the embedding families run their own row forward (:func:`_row_path`). It is checked row
by row, and on the probe rows together, against the model like the rest.

Category values outside the schema's categories go to ratchet's "other" bucket
(``OTHER``), and a datetime feature's calendar parts are computed from the validated
value with the same code as training (``ratchet.data.datetimes.datetime_features``).

A regression model (``task == "regression"``) runs the same blocks and network; its
one output is de-standardised by the model's own ``to_target`` (numbers, not probabilities).

Anything else (another preprocessor, a model without ``module``) is served by the
model's own ``predict_proba`` (``predict``) on a DataFrame. A compiled path is checked
against the model's own ``predict_proba`` (a regression model's ``predict``) on probe rows
built from the schema (nulls, unseen categories, boundaries) before it is used, and dropped
on any mismatch.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from ratchet.core.schema import Schema
from ratchet.data.datetimes import datetime_features
from ratchet.training.model.preprocess import OTHER, derived_name

log = logging.getLogger(__name__)

ATOL = 1e-5


class FastPath:
    """``predict_proba(columns, n)`` for validated columns (``{name: [value, ...]}``); for a
    regression model (``regression``) ``predict_values(columns, n)``: (n,) numbers in the
    target's units."""

    def __init__(
        self, blocks: list[tuple[Callable, int]], network: Callable, derive: Callable | None = None,
        regression: bool = False, rows: Callable | None = None,
    ):
        self.regression = regression
        self._derive = derive  # adds the derived (datetime part) columns to the validated ones
        self._blocks = []  # (fill(columns, n, out_slice), start, stop)
        start = 0
        for block, width in blocks:
            self._blocks.append((block, start, start + width))
            start += width
        self._network = network
        self.width = start
        # [columns, ...] -> the answers for a few one-row requests (see _row_path), when it compiled
        self.rows = rows

    def matrix(self, columns: dict[str, list], n: int) -> np.ndarray:
        if self._derive is not None:
            columns = self._derive(columns)
        out = np.zeros((n, self.width), dtype=np.float32)
        for block, start, stop in self._blocks:
            block(columns, n, out[:, start:stop])
        return out

    def predict_proba(self, columns: dict[str, list], n: int) -> np.ndarray:
        """(n, classes) probabilities; for regression (``predict_values``) the network's output
        de-standardised, (n,) float64: one forward, whose network ends in the softmax or in the
        target's units (``compile_fast_path``)."""
        if n == 1 and self.rows is not None:
            return self.rows([columns])
        return self._network(self.matrix(columns, n))

    predict_values = predict_proba

    def predict_rows(self, each: list[dict[str, list]]) -> np.ndarray:
        """The answers for several one-row requests' columns in one forward ((rows, classes)
        probabilities, or (rows,) numbers for regression): the row path when it compiled, else
        the matrix path on their columns joined."""
        if self.rows is not None:
            return self.rows(each)
        return self._network(self.matrix({name: [c[name][0] for c in each] for name in each[0]}, len(each)))


# ---------------------------------------------------------------- preprocessing
def _numeric_block(cols: list[str], steps: list) -> Callable | None:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    fill = mean = scale = None
    for step in steps:
        if isinstance(step, SimpleImputer):
            if fill is not None or mean is not None:
                return None
            stats = np.asarray(step.statistics_, dtype=np.float64)
            if stats.shape != (len(cols),) or not np.isfinite(stats).all():
                return None  # an all-missing training column would be dropped: not handled here
            if not (isinstance(step.missing_values, float) and math.isnan(step.missing_values)):
                return None
            fill = stats
        elif isinstance(step, StandardScaler):
            if mean is not None or scale is not None:
                return None
            mean = np.asarray(step.mean_, dtype=np.float64) if step.with_mean else None
            scale = np.asarray(step.scale_, dtype=np.float64) if step.with_std else None
        else:
            return None

    def block(columns: dict, n: int, out: np.ndarray) -> None:
        # bools become 0/1 and nulls (validated as NaN or None) become NaN, as pd.to_numeric does
        if n == 1:
            x = np.array([columns[c][0] for c in cols], dtype=np.float64).reshape(1, len(cols))
        else:
            x = np.array([columns[c] for c in cols], dtype=np.float64).T
        if fill is not None:
            nan = np.isnan(x)
            if nan.any():
                x = np.where(nan, fill, x)
        if mean is not None:
            x -= mean
        if scale is not None:
            x /= scale
        out[:] = x

    # one row in plain Python floats: the same float64 arithmetic as ``block`` (np.float32 then
    # rounds it the same way); a dozen numpy calls on a 1-row array cost more than the network
    items = tuple(
        (c, math.nan if fill is None else float(fill[j]), 0.0 if mean is None else float(mean[j]),
         1.0 if scale is None else float(scale[j]))
        for j, c in enumerate(cols)
    )

    def row(columns: dict, out: list, start: int) -> None:
        for k, (c, f, m, s) in enumerate(items, start):
            v = columns[c][0]
            if v is None or v != v:
                v = f
            out[k] = (v - m) / s

    block.row = row
    return block


def _categorical_block(cols: list[str], steps: list, known: list[frozenset[str]]) -> Callable | None:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    fill = None
    encoder = None
    for step in steps:
        if isinstance(step, SimpleImputer) and encoder is None and fill is None:
            mv = step.missing_values
            if step.strategy != "constant" or not (mv is None or (isinstance(mv, float) and math.isnan(mv))):
                return None
            fill = step.fill_value
        elif isinstance(step, OneHotEncoder) and encoder is None:
            encoder = step
        else:
            return None
    if encoder is None or encoder.handle_unknown != "ignore" or encoder.drop is not None:
        return None
    if getattr(encoder, "_infrequent_enabled", False):
        return None
    # categories as fitted: strings; ratchet's frame_for_model turns a missing value (None or
    # NaN) into NaN, which SimpleImputer fills with its constant before the encoder sees it,
    # and a value outside the schema's categories into OTHER
    lookups = [{c: i for i, c in enumerate(cats.tolist())} for cats in encoder.categories_]
    if len(lookups) != len(cols):
        return None
    offsets = [0, *itertools.accumulate(len(cats) for cats in encoder.categories_)]

    def category(v: object, seen) -> str:  # the category the fitted encoder sees for a raw value
        if v is None or (not isinstance(v, str) and v != v):
            return fill
        if not isinstance(v, str):
            v = str(v)
        return v if v in seen else OTHER

    def block(columns: dict, n: int, out: np.ndarray) -> None:  # out: zeros, (n, width)
        for j, c in enumerate(cols):
            lookup, base, seen = lookups[j], offsets[j], known[j]
            for i, v in enumerate(columns[c]):
                k = lookup.get(category(v, seen))
                if k is not None:  # an unseen category: all zeros, like handle_unknown="ignore"
                    out[i, base + k] = 1.0

    items = tuple(zip(cols, lookups, offsets, known, strict=False))

    def row(columns: dict, out: list, start: int) -> None:  # ``block`` on one row, into a list of zeros
        for c, lookup, base, seen in items:
            k = lookup.get(category(columns[c][0], seen))
            if k is not None:
                out[start + base + k] = 1.0

    block.row = row
    return block


def _compile_preprocessor(pre, schema: Schema) -> tuple[list[tuple[Callable, int]], int] | None:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(pre, ColumnTransformer) or not hasattr(pre, "transformers_"):
        return None
    dtypes = {c.name: c.dtype for c in schema.features}
    for c in schema.features:  # a datetime feature reaches the preprocessor as its parts
        if c.dtype == "datetime":
            dtypes.pop(c.name)
            dtypes.update({derived_name(c.name, p): "float" for p in c.parts})
    known = {c.name: frozenset(c.categories or ()) for c in schema.features if c.dtype == "category"}
    blocks = []
    width = 0
    for name, trans, cols in pre.transformers_:
        if trans == "drop":
            continue
        if isinstance(trans, str) or not isinstance(cols, list | tuple) or not cols:
            return None  # passthrough, or columns by index/mask
        cols = [str(c) for c in cols]
        if any(c not in dtypes for c in cols):
            return None
        steps = [s for _, s in trans.steps] if isinstance(trans, Pipeline) else [trans]
        kinds = {dtypes[c] == "category" for c in cols}
        if kinds == {False}:
            block = _numeric_block(cols, steps)
            w = len(cols)
        elif kinds == {True}:
            block = _categorical_block(cols, steps, [known[c] for c in cols])
            w = sum(len(c) for c in steps[-1].categories_) if block else 0
        else:
            return None
        if block is None:
            log.info("no fast path: transformer %r is not one the fast path knows", name)
            return None
        blocks.append((block, w))
        width += w
    return (blocks, width) if blocks else None


# ---------------------------------------------------------------- network
def _numpy_mlp(module) -> Callable | None:
    """Linear/ReLU/Dropout layers of ``module.net`` as numpy, when ``forward`` is ``net(x)``."""
    from ratchet.training.model.families import numpy_sequential

    if module.training:
        return None
    return numpy_sequential(getattr(module, "net", None))


def _numpy_network(module) -> Callable | None:
    """The module's own numpy forward (``numpy_forward()``: the embedding families of
    ``ratchet.training.model.families``), else a plain ``net`` MLP's, else None (torch serves it)."""
    own = getattr(module, "numpy_forward", None)
    if callable(own):
        if module.training:
            return None
        return own()
    return _numpy_mlp(module)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _row_path(blocks: list[tuple[Callable, int]], width: int, mlp: Callable, derive: Callable | None,
              finish: Callable[[np.ndarray], np.ndarray]) -> Callable | None:
    """``[columns, ...] -> finish(network output)``: the row path for a few requests of one row each
    (one request, or the single rows of concurrent requests the service batches; (rows, outputs)).
    Each row's features are built in a Python list (each block's ``row``) and the rows stacked, then
    each layer is one numpy call: the bias is a last row of the weights, fed by a constant 1 at the
    end of the input, and every layer but the last gets a unit whose output is always 1 (zero
    weights, bias 1; ReLU keeps it) for the next layer's bias. Five numpy calls for a
    two-hidden-layer MLP where ``matrix`` and ``numpy_sequential`` make about twenty-five, on rows
    whose arithmetic costs less than any one of them. None when a block has no ``row`` or the
    network is neither a plain ``numpy_sequential`` MLP nor a family with its own ``row``."""
    layers = getattr(mlp, "layers", None)
    own = getattr(mlp, "row", None)  # an embedding family's own row forward (model.families)
    if not (layers or own) or any(getattr(b, "row", None) is None for b, _ in blocks):
        return None
    fills, start = [], 0
    for block, w in blocks:
        fills.append((block.row, start))
        start += w
    if start != width:
        return None

    def features(columns: dict[str, list]) -> list[float]:  # the row's features, then a constant 1
        if derive is not None:
            columns = derive(columns)
        row = [0.0] * width
        row.append(1.0)
        for fill, at in fills:
            fill(columns, row, at)
        return row

    if not layers:
        # a family that gives its probabilities itself (TabM's members' mean) skips the softmax; not
        # with a prior-shift re-weighting, whose finish takes logits
        own_proba = bool(getattr(own, "proba", False))
        gives_proba = own_proba and finish is _softmax_rows

        def rows_own(each: list[dict[str, list]]) -> np.ndarray:
            out = own(np.array([features(c) for c in each], dtype=np.float32))
            if gives_proba:
                return out.astype(np.float64)
            return finish(np.log(out) if own_proba else out)  # finish takes logits

        return rows_own
    last = max(i for i, layer in enumerate(layers) if layer is not None)
    steps: list[np.ndarray | None] = []  # a weight matrix with its bias row, or None for a ReLU
    for i, layer in enumerate(layers):
        if layer is None:
            steps.append(None)
            continue
        w, b = layer
        n_in, n_out = w.shape
        keep_one = i != last
        aug = np.zeros((n_in + 1, n_out + keep_one), dtype=np.float32)
        aug[:n_in, :n_out] = w
        if b is not None:
            aug[n_in, :n_out] = b
        if keep_one:
            aug[n_in, n_out] = 1.0
        steps.append(aug)

    def rows(each: list[dict[str, list]]) -> np.ndarray:
        x = np.array([features(c) for c in each], dtype=np.float32)
        for step in steps:
            if step is None:
                np.maximum(x, 0.0, out=x)
            else:
                x = x.dot(step)  # ndarray.dot: a third less overhead than @ on these sizes
        return finish(x)

    return rows


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    """``_softmax`` of a few rows' logits: one row in plain Python floats (the same float64 steps;
    on one row numpy's calls cost more than the arithmetic), more through ``_softmax``."""
    if len(logits) > 1:
        return _softmax(logits)
    z = logits[0].tolist()
    m = max(z)
    e = [math.exp(v - m) for v in z]
    total = sum(e)
    return np.array([[v / total for v in e]])


def _torch_network(module, softmax: bool = True) -> Callable:
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = module(torch.from_numpy(x))
            return (torch.softmax(out, dim=1) if softmax else out).numpy()

    return run


# ---------------------------------------------------------------- probe
def _deriver(schema: Schema) -> Callable | None:
    """``columns -> columns`` plus the calendar parts of each datetime feature, or None."""
    dated = [(c.name, c.parts) for c in schema.features if c.dtype == "datetime"]
    if not dated:
        return None

    def derive(columns: dict[str, list]) -> dict[str, list]:
        out = dict(columns)
        for name, parts in dated:
            values = datetime_features(columns[name], parts)
            for j, part in enumerate(parts):
                out[derived_name(name, part)] = values[:, j]
        return out

    return derive


def probe_rows(schema: Schema) -> dict[str, list]:
    """Validated-style columns covering typical values, bounds, nulls and unseen categories."""
    from datetime import datetime

    cols: dict[str, list] = {}
    n = 6
    for c in schema.features:
        nullable = c.max_null_share > 0
        if c.dtype == "datetime":
            vals = [
                datetime(2020, 1, 1),
                datetime(2021, 6, 15, 13, 30),
                datetime(2019, 12, 31, 23, 59),
                datetime(2024, 2, 29, 8),
                datetime(2030, 7, 4, 17, 45),
                None if nullable else datetime(2022, 3, 6, 6),
            ]
        elif c.dtype == "category":
            cats = list(c.categories or ["a"])
            vals = [cats[i % len(cats)] for i in range(4)] + ["__ratchet_unseen__", None if nullable else cats[0]]
        elif c.dtype == "bool":
            vals = [True, False, True, False, True, None if nullable else False]
        else:
            lo = c.min if c.min is not None else -1.0
            hi = c.max if c.max is not None else 1.0
            mid = (lo + hi) / 2
            vals = [lo, hi, mid, lo + (hi - lo) / 4, hi * 2 + 1, math.nan if nullable else mid]
            if c.dtype == "int":
                vals = [v if isinstance(v, float) and math.isnan(v) else int(round(v)) for v in vals]
        cols[c.name] = vals[:n]
    return cols


def _agrees(got: np.ndarray, want: np.ndarray, atol: float) -> bool:
    return got.shape == want.shape and np.allclose(got, want, atol=atol, rtol=1e-4)


def _reweighted(network: Callable, weights) -> Callable:
    from ratchet.core.prior_shift import reweight

    return lambda x: reweight(network(x), weights)


def compile_fast_path(model) -> FastPath | None:
    """A checked fast path for ``model``, or None (serve through ``model.predict_proba``)."""
    schema = getattr(model, "schema", None)
    pre = getattr(model, "preprocessor", None)
    module = getattr(model, "module", None)
    if schema is None or pre is None or module is None or not callable(module):
        return None
    # a champion re-weighted to a prior shift (ratchet.core.prior_shift): its probabilities times
    # these, renormalised, as its predict_proba gives them; checked against it below like the rest
    weights = getattr(model, "prior_weights", None)
    try:
        compiled = _compile_preprocessor(pre, schema)
        if compiled is None:
            return None
        blocks, _ = compiled
        mlp = _numpy_network(module)
        derive = _deriver(schema)
        cols = probe_rows(schema)
        n = len(next(iter(cols.values())))
        frame = pd.DataFrame(cols, columns=schema.feature_names)
        regression = getattr(model, "task", None) == "regression"
        if regression:  # the network's standardised (n, 1) output, in the target's units
            to_target = getattr(model, "to_target", None)
            if to_target is None:
                return None
            raw = _torch_network(module, softmax=False)
            network = (lambda x: to_target(mlp(x))) if mlp is not None else (lambda x: to_target(raw(x)))
            fallback = lambda x: to_target(raw(x))  # noqa: E731
            want = np.asarray(model.predict(frame), dtype=np.float64)
            atol = ATOL * max(1.0, float(np.abs(want).max(initial=0.0)))  # a float32 network, in target units
        else:
            network = (lambda x: _softmax(mlp(x))) if mlp is not None else _torch_network(module)
            fallback = _torch_network(module)
            if weights is not None:
                network, fallback = _reweighted(network, weights), _reweighted(fallback, weights)
            want = np.asarray(model.predict_proba(frame), dtype=np.float64)
            atol = ATOL
        fast = FastPath(blocks, network, derive, regression)
        per_row = mlp  # the network the row path folds (not when forward() is more than net(x))
        got = fast.predict_proba(cols, n)
        if got.shape != want.shape or not np.allclose(got, want, atol=atol, rtol=1e-4):
            if mlp is not None:  # maybe forward() is not just net(x): try the module itself
                per_row = None
                fast = FastPath(blocks, fallback, derive, regression)
                got = fast.predict_proba(cols, n)
            if got.shape != want.shape or not np.allclose(got, want, atol=atol, rtol=1e-4):
                log.warning("fast path disagrees with the model's %s: not used",
                            "predict" if regression else "predict_proba")
                return None
        if per_row is not None:  # the row path, checked row by row and on the probe's rows together
            finish = to_target if regression else _softmax_rows
            if weights is not None and not regression:
                finish = _reweighted(_softmax_rows, weights)
            rows = _row_path(blocks, fast.width, per_row, derive, finish)
            each = [{k: [v[i]] for k, v in cols.items()} for i in range(n)]
            if rows is not None and all(_agrees(rows([c]), want[i:i + 1], atol) for i, c in enumerate(each)) \
                    and _agrees(rows(each), want, atol):
                fast.rows = rows
            elif rows is not None:
                log.warning("the row fast path disagrees with the model: rows go through the matrix path")
        return fast
    except Exception as e:  # never let an optimisation stop a model from loading
        log.warning("no fast path: %s: %s", type(e).__name__, e)
        return None
