"""Model families beyond the plain MLP: numeric embeddings and TabM, as LightningModules.

The families (``FAMILIES``, chosen by ``train.family`` or by the search's ``family`` parameter):

* ``mlp``: ``ratchet.training.model.module.TabularMLP``, the plain MLP.
* ``mlp_ple``: :class:`EmbeddingMLP`, the MLP over piecewise-linear embeddings of the numeric
  columns (Gorishniy et al., "On Embeddings for Numerical Features in Tabular Deep Learning",
  NeurIPS 2022), from ``rtdl_num_embeddings``; the bins are quantiles of the training rows.
* ``tabm``: :class:`TabMModule`, TabM (Gorishniy et al., ICLR 2025): ``k`` MLPs that share
  their weights (BatchEnsemble layers from the ``tabm`` package) over the same embeddings,
  trained at once, each on its own loss, and averaged at prediction.

All take the preprocessed matrix the plain MLP takes (``ratchet.training.model.preprocess``:
the numeric columns, imputed and standardised, then the one-hot categories), so the
preprocessing, the Predictor, DDP, chunked steps and the serving fast path are the same for
every family. The numeric block is the first ``n_numeric`` columns; the rest is one-hot.

Categorical columns: the one-hot block enters the first linear layer, which is a learned
embedding of each category (``one_hot @ W`` is the row of ``W`` for that category) of the
layer's width; this is also how the TabM reference implementation feeds categories
(``tabm.TabM``'s ``_OneHotEncoding``), and for TabM the first BatchEnsemble layer's
per-member scaling is initialised per feature chunk (``start_scaling_init_chunks``: one
chunk per numeric embedding, one per categorical column's one-hot), as ``tabm.TabM`` does.
An unseen category is all zeros, as in the plain MLP.

``data_args`` (a classmethod called by ``fit`` on the training split, before the module is
built) supplies what depends on the data: the numeric/categorical layout and the bins, so a
pickled Predictor rebuilds the same module from its hyperparameters.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ratchet.training.model.module import TabularMLP

FAMILIES = {
    "mlp": "ratchet.training.model.module.TabularMLP",
    "mlp_ple": "ratchet.training.model.families.EmbeddingMLP",
    "tabm": "ratchet.training.model.families.TabMModule",
}


def family_class(family: str) -> str:
    """The import path of a family's module; an unknown family is one clear error."""
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}") from None


def quantile_bins(x_num: torch.Tensor, n_bins: int) -> list[list[float]]:
    """Bin edges per numeric column: ``rtdl_num_embeddings.compute_bins`` (quantiles, duplicates
    removed) on the training rows, as plain lists (they travel in the hyperparameters).

    ``compute_bins`` refuses a constant column; such a column (constant on the training rows)
    gets one bin around its value, which is min-max scaling of a constant: it carries nothing,
    as in the plain MLP."""
    from rtdl_num_embeddings import compute_bins

    x_num = x_num.float()
    n = len(x_num)
    varying = [j for j in range(x_num.shape[1]) if bool((x_num[:, j] != x_num[0, j]).any())] if n else []
    bins: dict[int, list[float]] = {}
    if varying and n > 2:
        with warnings.catch_warnings():  # a two-valued column (a flag) has one bin: fine, as documented there
            warnings.simplefilter("ignore", UserWarning)
            edges = compute_bins(x_num[:, varying], n_bins=max(2, min(int(n_bins), n - 1)))
        bins = {j: e.tolist() for j, e in zip(varying, edges, strict=True)}
    out = []
    for j in range(x_num.shape[1]):
        if j in bins:
            out.append(bins[j])
        else:
            v = float(x_num[0, j]) if n else 0.0
            out.append([v - 1.0, v + 1.0])
    return out


def numpy_sequential(net: nn.Module) -> Callable[[np.ndarray], np.ndarray] | None:
    """A ``Sequential`` of Linear/ReLU/Dropout/Identity layers as a numpy function on a float32
    matrix (Dropout and Identity are no-ops in eval mode); None for any other layer. The serving
    fast path's plain MLP (``ratchet.serving.fastpath``) and the embedding MLP's head both run on it."""
    if not isinstance(net, nn.Sequential):
        return None
    layers: list[tuple[np.ndarray, np.ndarray | None] | None] = []  # None: a ReLU
    for layer in net:
        if isinstance(layer, nn.Linear):
            w = layer.weight.detach().cpu().numpy().astype(np.float32).T.copy()
            b = None if layer.bias is None else layer.bias.detach().cpu().numpy().astype(np.float32)
            layers.append((w, b))
        elif isinstance(layer, nn.ReLU):
            layers.append(None)
        elif not isinstance(layer, nn.Dropout | nn.Identity):
            return None

    def run(x: np.ndarray) -> np.ndarray:
        for layer in layers:
            if layer is None:
                x = np.maximum(x, 0.0)
            else:
                x = x @ layer[0]
                if layer[1] is not None:
                    x = x + layer[1]
        return x

    run.layers = layers  # the serving fast path folds them for a single row (ratchet.serving.fastpath)
    return run


def _ple(bins: list[list[float]], d_embedding: int) -> nn.Module:
    from rtdl_num_embeddings import PiecewiseLinearEmbeddings

    with warnings.catch_warnings():  # a one-bin (constant or two-valued) column is allowed; no warning per build
        warnings.simplefilter("ignore", UserWarning)
        # version "B" (the TabM paper's): a linear embedding plus a zero-initialised piecewise-linear part,
        # so training starts from the plain linear model; no activation, as the package recommends for MLPs
        return PiecewiseLinearEmbeddings(
            [torch.tensor(b, dtype=torch.float32) for b in bins], int(d_embedding), activation=False, version="B"
        )


def _ple_bounds(ew: np.ndarray, single_bin_mask) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi), each (n, bins): where ``rtdl_num_embeddings``' piecewise-linear encoding clamps each
    component: the first only capped at 1, the last only floored at 0, a one-bin feature's last not
    clamped, a single bin not at all."""
    n_bins = ew.shape[1]
    lo = np.full(n_bins, 0.0, np.float32)
    hi = np.full(n_bins, 1.0, np.float32)
    if n_bins > 1:
        lo[0], hi[-1] = -np.inf, np.inf
    lo = np.broadcast_to(lo, ew.shape).copy()
    hi = np.broadcast_to(hi, ew.shape).copy()
    single = None if single_bin_mask is None else single_bin_mask.detach().numpy()
    if single is not None and n_bins > 1:
        lo[single, -1] = -np.inf
    if n_bins == 1:
        lo[:], hi[:] = -np.inf, np.inf
    return lo, hi


class _Embedded(TabularMLP):
    """Shared by the families: the numeric/one-hot layout and ``data_args``."""

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        n_numeric: int = 0,
        cat_sizes: list[int] | tuple[int, ...] = (),
        bins: list[list[float]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(n_features, n_classes, **kwargs)
        if n_numeric + sum(cat_sizes) != n_features:
            raise ValueError(
                f"n_numeric ({n_numeric}) + one-hot widths ({sum(cat_sizes)}) != n_features ({n_features})"
            )
        if n_numeric and (bins is None or len(bins) != n_numeric):
            raise ValueError(f"{type(self).__name__} needs bins for each of its {n_numeric} numeric columns")
        self.n_numeric = int(n_numeric)
        self.cat_sizes = [int(c) for c in cat_sizes]
        self.net = None  # replaced by the family's network (TabularMLP built a plain one)

    @classmethod
    def data_args(
        cls, x_train: torch.Tensor, n_numeric: int, cat_sizes: list[int], args: dict[str, Any]
    ) -> dict[str, Any]:
        """Arguments fitted on the training split: the layout and the numeric columns' bins."""
        out: dict[str, Any] = {"n_numeric": int(n_numeric), "cat_sizes": [int(c) for c in cat_sizes]}
        if n_numeric:
            out["bins"] = quantile_bins(x_train[:, :n_numeric], int(args.get("n_bins", DEFAULT_BINS)))
        return out

    def _ple_written_out(self) -> bool:
        """Whether the numpy forms below reproduce the embedding: version B without activation."""
        emb = self.num_embeddings
        return emb.linear.bias is None and emb.activation is None

    def _ple_weights(self, dtype) -> tuple[np.ndarray, ...]:
        """The fitted piecewise-linear embedding as arrays of ``dtype``: the linear embedding's weight
        (n, d) and bias, the encoding's weight (n, bins) and bias, its linear map's weight (n, bins, d)."""
        emb = self.num_embeddings
        return tuple(t.detach().numpy().astype(dtype) for t in (
            emb.linear0.weight, emb.linear0.bias, emb.impl.weight, emb.impl.bias, emb.linear.weight))

    def _numpy_features(self):
        """``_features`` as numpy (the serving fast path: ``numpy_forward``): the piecewise-linear
        embedding written out from ``rtdl_num_embeddings``' fitted tensors (version B: a linear
        embedding plus the encoding's per-feature linear map, no activation)."""
        n_num = self.n_numeric
        if not n_num:
            return lambda x: x
        if not self._ple_written_out():
            return None
        emb = self.num_embeddings
        w0, b0, ew, eb, lw = self._ple_weights(np.float32)

        lw_t = np.ascontiguousarray(lw)  # (n, bins, d): one batched matmul per feature, not an einsum
        lo, hi = _ple_bounds(ew, emb.impl.single_bin_mask)

        def features(x: np.ndarray) -> np.ndarray:
            num = x[:, :n_num]
            enc = np.clip(eb + ew * num[..., None], lo, hi)  # (rows, n, bins)
            ple = np.matmul(enc.transpose(1, 0, 2), lw_t).transpose(1, 0, 2)  # (rows, n, d)
            out = (b0 + w0 * num[..., None] + ple).reshape(len(x), -1)
            return np.concatenate([out, x[:, n_num:]], axis=1) if x.shape[1] > n_num else out

        return features

    def _row_features(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """``_numpy_features`` for a few rows (the serving fast path's row path: one request's row, or
        the single rows of concurrent requests batched): ``xr`` is (rows, width + 1), each row's
        float32 features followed by a constant 1; the piecewise-linear encoding is
        ``enc = clip(xr @ D, lo, hi)`` (every feature's bins side by side) and the features are
        ``xr @ E_rest + enc @ E_enc``. No numeric column: the rows themselves, less their constant 1.
        None where ``_numpy_features`` is None.
        Why matrices: a single row costs what its numpy calls cost, not its arithmetic; the batched
        form makes a dozen calls, this one five. The features are not folded into the next layer: a
        folded matrix rounds otherwise than torch's float32 steps (1e-4 apart on large logits, past
        the fast path's load check)."""
        n = self.n_numeric
        if not n:
            return lambda xr: xr[:, :-1]
        if not self._ple_written_out():
            return None
        emb = self.num_embeddings
        w0, b0, ew, eb, lw = self._ple_weights(np.float32)
        n_bins, d, c = ew.shape[1], w0.shape[1], sum(self.cat_sizes)
        lo, hi = (b.reshape(-1) for b in _ple_bounds(ew, emb.impl.single_bin_mask))
        width, d_in = n + c + 1, n * d + c  # the row, then the constant 1; the features
        D = np.zeros((width, n * n_bins), np.float32)
        E_rest = np.zeros((width, d_in), np.float32)
        E_enc = np.zeros((n * n_bins, d_in), np.float32)
        for j in range(n):
            D[j, j * n_bins:(j + 1) * n_bins] = ew[j]
            E_rest[j, j * d:(j + 1) * d] = w0[j]
            E_enc[j * n_bins:(j + 1) * n_bins, j * d:(j + 1) * d] = lw[j]
        D[-1] = eb.reshape(-1)
        E_rest[-1, : n * d] = b0.reshape(-1)
        E_rest[n:n + c, n * d:d_in] = np.eye(c, dtype=np.float32)

        def features(xr: np.ndarray) -> np.ndarray:
            enc = xr.dot(D)
            np.maximum(enc, lo, out=enc)  # np.clip with array bounds costs three times these two
            np.minimum(enc, hi, out=enc)
            f = xr.dot(E_rest)
            f += enc.dot(E_enc)
            return f

        return features

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, d_in): the numeric embeddings, flattened, then the one-hot block."""
        if not self.n_numeric:
            return x
        emb = self.num_embeddings(x[:, : self.n_numeric]).flatten(1)
        return torch.cat([emb, x[:, self.n_numeric :]], dim=1) if x.shape[1] > self.n_numeric else emb


# 24 quantile bins rather than the paper's 48: on the few-thousand-row sets ratchet trains on, 48 bins
# hold a few dozen rows each and the embedding's cost grows with the bins (see benchmarks/real_data.py)
DEFAULT_BINS = 24


class EmbeddingMLP(_Embedded):
    """The MLP over piecewise-linear embeddings of the numeric columns (``mlp_ple``)."""

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        n_numeric: int = 0,
        cat_sizes: list[int] | tuple[int, ...] = (),
        bins: list[list[float]] | None = None,
        n_bins: int = DEFAULT_BINS,
        d_embedding: int = 8,
        hidden: list[int] | tuple[int, ...] = (64, 32),
        dropout: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(n_features, n_classes, n_numeric, cat_sizes, bins, hidden=hidden, dropout=dropout, **kwargs)
        self.num_embeddings = _ple(bins, d_embedding) if n_numeric else None
        width = n_numeric * int(d_embedding) + sum(self.cat_sizes)
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(h)
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self._features(x))

    def numpy_forward(self):
        """``forward`` as numpy on a float32 matrix (the serving fast path), or None."""
        features = self._numpy_features()
        head = numpy_sequential(self.net)
        if features is None or head is None:
            return None

        def run(x: np.ndarray) -> np.ndarray:
            return head(features(x))

        row_features = self._row_features()
        if row_features is not None:
            layers = head.layers

            def row(xr: np.ndarray) -> np.ndarray:
                h = row_features(xr)
                for layer in layers:
                    if layer is None:
                        np.maximum(h, 0.0, out=h)
                    else:
                        h = h.dot(layer[0])
                        if layer[1] is not None:
                            h += layer[1]
                return h

            run.row = row  # xr: (rows, width + 1), features and a constant 1 (ratchet.serving.fastpath)
        return run


class TabMModule(_Embedded):
    """TabM (``tabm``): ``k`` weight-sharing MLPs over piecewise-linear embeddings.

    ``forward`` returns what every ratchet model returns, one prediction per row: for a
    classifier the log of the members' mean probability (a softmax of it, as the Predictor
    takes, gives that mean exactly), for regression the members' mean output. Training
    minimises the mean of the members' own losses (``training_loss``), as the paper does, so
    the members stay diverse; validation, early stopping and pruning watch the ensemble.

    The blocks have one width, ``max(hidden)``, and ``len(hidden)`` of them. ``k`` defaults
    to 8, not the paper's 32: on CPU the cost grows with k (BatchEnsemble runs k rows per row),
    and the paper's own ablation shows most of the gain by k = 8.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        n_numeric: int = 0,
        cat_sizes: list[int] | tuple[int, ...] = (),
        bins: list[list[float]] | None = None,
        n_bins: int = DEFAULT_BINS,
        d_embedding: int = 8,
        k: int = 8,
        hidden: list[int] | tuple[int, ...] = (128, 128),
        dropout: float = 0.1,
        **kwargs: Any,
    ) -> None:
        from tabm import EnsembleView, LinearEnsemble, make_tabm_backbone

        super().__init__(n_features, n_classes, n_numeric, cat_sizes, bins, hidden=hidden, dropout=dropout, **kwargs)
        self.k = int(k)
        self.num_embeddings = _ple(bins, d_embedding) if n_numeric else None
        chunks = [int(d_embedding)] * n_numeric + self.cat_sizes
        self.ensemble_view = EnsembleView(k=self.k)
        self.backbone = make_tabm_backbone(
            d_in=sum(chunks), n_blocks=len(hidden), d_block=int(max(hidden)), dropout=dropout, k=self.k,
            arch_type="tabm",
            # tabm.TabM.make's choice with numeric embeddings ('random-signs' without)
            start_scaling_init="normal" if n_numeric else "random-signs",
            start_scaling_init_chunks=chunks,
        )
        self.output = LinearEnsemble(int(max(hidden)), n_classes, k=self.k)

    def members(self, x: torch.Tensor) -> torch.Tensor:
        """(n, k, outputs): every member's logits (or standardised value)."""
        return self.output(self.backbone(self.ensemble_view(self._features(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.members(x)
        if self.regression:
            return out.mean(dim=1)
        # log of the mean probability, computed stably: logsumexp over members of log-softmax, minus log k
        return torch.logsumexp(torch.log_softmax(out, dim=-1), dim=1) - math.log(self.k)

    def numpy_forward(self):
        """``forward`` as numpy on a float32 matrix (the serving fast path), or None: each
        BatchEnsemble layer is ``((x * r) @ W.T) * s + bias`` per member, the head one linear map
        per member (``tabm.LinearBatchEnsemble``, ``tabm.LinearEnsemble``)."""
        from tabm import LinearBatchEnsemble

        features = self._numpy_features()
        if features is None:
            return None
        blocks = []
        for block in self.backbone.blocks:
            linear = block[0]
            if not isinstance(linear, LinearBatchEnsemble) or not isinstance(block[1], nn.ReLU):
                return None
            blocks.append(tuple(
                None if t is None else t.detach().numpy().astype(np.float32)
                for t in (linear.r, linear.weight.T, linear.s, linear.bias)
            ))
        hw = self.output.weight.detach().numpy().astype(np.float32)  # (k, d, out)
        hb = self.output.bias.detach().numpy().astype(np.float32)  # (k, out)
        regression, log_k = self.regression, math.log(self.k)

        def run(x: np.ndarray) -> np.ndarray:
            f = features(x)
            h = np.broadcast_to(f[:, None, :], (len(f), len(hb), f.shape[1]))  # every member sees the row
            for r, wt, sc, b in blocks:
                h = (h * r) @ wt
                h *= sc
                if b is not None:
                    h += b
                np.maximum(h, 0.0, out=h)
            out = np.matmul(h.transpose(1, 0, 2), hw).transpose(1, 0, 2) + hb  # (rows, k, outputs)
            if regression:
                return out.mean(axis=1)
            z = out - out.max(axis=2, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))  # members' log-softmax
            m = logp.max(axis=1, keepdims=True)
            return (m + np.log(np.exp(logp - m).sum(axis=1, keepdims=True)))[:, 0, :] - log_k

        row_features = self._row_features()
        if row_features is not None and blocks:
            run.row = _tabm_row(row_features, blocks, hw, hb, regression)
        return run

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.members(x)  # (n, k, outputs)
        flat = out.flatten(0, 1)
        return self._loss(flat, y.repeat_interleave(self.k))


def _tabm_row(row_features: Callable[[np.ndarray], np.ndarray], blocks, hw: np.ndarray, hb: np.ndarray,
              regression: bool) -> Callable[[np.ndarray], np.ndarray]:
    """TabM's forward for a few rows ``xr`` ((rows, width + 1): each row's features and a constant 1;
    the serving fast path's row path): each row's k members as k rows of one matrix, each
    BatchEnsemble layer ``((h * r) @ W) * s + b`` as written, one matmul by the SHARED ``W`` for all
    members of all rows. Returns (rows, outputs): the members' mean probability (``row.proba``), or
    their mean output for regression.

    Why not each member's own ``diag(r) W diag(s)`` (one batched matmul a layer, fewer numpy calls,
    the form before): k times the weights, about 1 MB in float32 against 90 KB shared; a server's
    other work evicts it from the cache between requests, and k matrix-vector products read it all
    where one k-row matmul reads ``W`` once. Measured in process on the serving benchmark's TabM
    (k = 8, two 128-unit blocks): 40 us a row before, 22 after."""
    k = len(hb)
    ones = lambda n: np.ones((k, n), np.float32)  # noqa: E731 (a layer without r or s scales by 1)
    layers = [(ones(wt.shape[0]) if r is None else r, np.ascontiguousarray(wt),
               ones(wt.shape[1]) if s is None else s, np.zeros((k, wt.shape[1]), np.float32) if b is None else b)
              for r, wt, s, b in blocks]
    # the ReLU against an array of zeros: a Python float as the bound costs three times the call
    zeros = [np.zeros((k, wt.shape[1]), np.float32) for _, wt, _, _ in layers]
    # per count of rows m, each layer's r, s, b and zeros repeated m times: (m * k, width), so that every
    # step works on arrays of one shape (numpy's broadcasting iterator costs a third more a call)
    tiled = {1: [(r, w, s, b, zero) for (r, w, s, b), zero in zip(layers, zeros, strict=True)]}
    head_b, inv_k = hb[:, None, :], np.float32(1.0 / k)

    def row(xr: np.ndarray) -> np.ndarray:
        h = row_features(xr)  # (rows, d_in): each row's k members see it, through their own r
        m = len(h)
        steps = tiled.get(m)
        if steps is None:
            steps = tiled[m] = [tuple(np.tile(a, (m, 1)) if a.ndim == 2 and a is not w else a
                                      for a in (r, w, s, b, zero)) for r, w, s, b, zero in tiled[1]]
        if m > 1:
            h = np.repeat(h, k, axis=0)  # (m * k, d_in): row i's members are rows i*k .. i*k + k - 1
        for r, w, s, b, zero in steps:
            h = (h * r).dot(w)
            h *= s
            h += b
            np.maximum(h, zero, out=h)
        if m == 1:  # one row (the latency path): each member's head, then the mean probability by one dot
            out = np.matmul(h[:, None, :], hw)  # (k, 1, outputs)
            out += head_b
            out = out[:, 0, :]
            if regression:
                return (out.sum(axis=0) * inv_k)[None]
            out -= out.max(axis=1, keepdims=True)
            e = np.exp(out, out=out)
            return (inv_k / e.sum(axis=1)).dot(e)[None]  # the members' mean probability itself (row.proba)
        out = np.matmul(h.reshape(m, k, -1).transpose(1, 0, 2), hw)  # (k, rows, outputs)
        out += head_b
        if regression:
            return out.sum(axis=0) * inv_k
        out -= out.max(axis=2, keepdims=True)
        e = np.exp(out, out=out)
        e /= e.sum(axis=2, keepdims=True)
        return e.sum(axis=0) * inv_k

    row.proba = not regression  # classification: probabilities, not logits (ratchet.serving.fastpath)
    return row
