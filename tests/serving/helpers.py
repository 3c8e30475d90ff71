"""A real tiny model (sklearn Pipeline) and an in-memory provider whose aliases tests move."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ratchet.core.config import ServingConfig, load_config
from ratchet.core.schema import ColumnSpec, Schema, TargetSpec

if TYPE_CHECKING:
    from ratchet.training.model.fit import Predictor

COLORS = ["red", "green", "blue"]
SCHEMA = Schema(
    columns=[
        ColumnSpec(name="x1", dtype="float", min=-5, max=5),
        ColumnSpec(name="x2", dtype="int", min=0, max=100),
        ColumnSpec(name="color", dtype="category", categories=COLORS),
        ColumnSpec(name="flag", dtype="bool"),
    ],
    target=TargetSpec(name="y", classes=["no", "yes"]),
)


def serving_config(**overrides) -> ServingConfig:
    """``serving`` of the shipped config files (RATCHET_CONFIG, set by tests/conftest.py) plus overrides."""
    return load_config(overrides={"serving": overrides}).serving


def make_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.normal(0, 1.5, n).clip(-5, 5),
            "x2": rng.integers(0, 101, n),
            "color": rng.choice(COLORS, n),
            "flag": rng.random(n) < 0.5,
        }
    )


def true_label(df: pd.DataFrame) -> np.ndarray:
    score = 1.5 * df["x1"] + (df["x2"] - 50) / 25 + np.where(df["color"] == "red", 1.0, -0.5)
    return np.where(score > 0, "yes", "no")


def rows_of(df: pd.DataFrame) -> list[dict]:
    out = []
    for r in df.to_dict(orient="records"):
        out.append(
            {"x1": float(r["x1"]), "x2": int(r["x2"]), "color": str(r["color"]), "flag": bool(r["flag"])}
        )
    return out


NUMERIC = ["x1", "x2", "flag"]


class SkModel:
    """LoadedModel over real fitted scikit-learn parts: OneHotEncoder(handle_unknown="ignore") for
    the category, then a Pipeline(StandardScaler, LogisticRegression). Preprocessing is inside.

    (A ColumnTransformer does the same but costs ~15 ms per call on a busy 2-core box; the
    traffic tests send hundreds of requests.)"""

    def __init__(self, version: str, seed: int, C: float = 1.0):
        df = make_frame(400, seed)
        self.encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(
            df[["color"]].to_numpy(dtype=object)
        )
        self.pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=C, max_iter=500))])
        self.pipe.fit(self._features(df), true_label(df))
        self.version = version
        self.classes = list(self.pipe.classes_)
        self.schema = SCHEMA

    def _features(self, df: pd.DataFrame) -> np.ndarray:
        onehot = self.encoder.transform(df[["color"]].to_numpy(dtype=object))
        return np.hstack([df[NUMERIC].to_numpy(dtype=float), onehot])

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return self.pipe.predict(self._features(df))

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        return self.pipe.predict_proba(self._features(df))


class CalibratedModel(SkModel):
    """SkModel with its top-label confidence calibrated on held-out rows, as training leaves a Predictor."""

    def __init__(self, version: str, seed: int):
        from ratchet.core.performance import Calibration

        super().__init__(version, seed)
        held = make_frame(600, seed=seed + 100)
        proba = self.predict_proba(held)
        right = np.asarray(self.classes)[proba.argmax(axis=1)] == true_label(held)
        self.calibration = Calibration.fit(proba.max(axis=1), right)


class BrokenModel(SkModel):
    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("boom")


class WiderModel(SkModel):
    """A challenger whose schema wants one more input column (which it ignores)."""

    def __init__(self, version: str, seed: int):
        super().__init__(version, seed)
        self.schema = SCHEMA.model_copy(
            update={"columns": [*SCHEMA.columns, ColumnSpec(name="x3", dtype="float")]}
        )


class MemoryProvider:
    """ModelProvider over a dict of versions; ``set_alias`` moves an alias like the registry."""

    def __init__(self, models: dict[str, object], aliases: dict[str, str | None]):
        self.models = dict(models)
        self.aliases = {"champion": None, "challenger": None, **aliases}
        self.loads: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def set_alias(self, alias: str, version: str | None) -> None:
        with self._lock:
            self.aliases[alias] = version

    def load(self, alias: str):
        with self._lock:
            v = self.aliases.get(alias)
        if v is None:
            return None
        self.loads.append((alias, v))
        model = self.models[v]
        if isinstance(model, Exception):  # a registry/download failure
            raise model
        return model

    def versions(self) -> dict[str, str | None]:
        with self._lock:
            return dict(self.aliases)


def train_tiny_predictor(seed: int = 3, rows: int = 1500, epochs: int = 3):
    """A real ratchet model (ColumnTransformer + Lightning MLP) fitted in ~2 s with ratchet's own
    ``fit`` on the synthetic stream; returns (predictor, frame with the target column)."""
    from ratchet.core.config import TrainConfig
    from ratchet.data.schema_inference import infer_schema
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
    from ratchet.training.model.fit import fit

    df = generate_batch(0, rows, seed=seed)
    schema = infer_schema(df, DEMO_TARGET)
    split = int(rows * 0.8)
    result = fit(df.iloc[:split], df.iloc[split:], schema, TrainConfig(max_epochs=epochs), progress=False)
    return result.predictor, df


def feature_rows(df: pd.DataFrame, target: str) -> list[dict]:
    """JSON-ready feature rows (numpy scalars to Python) of ``df`` without ``target``."""
    out = []
    for r in df.drop(columns=[target]).to_dict(orient="records"):
        out.append({k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()})
    return out


MIXED_SCHEMA = Schema(
    columns=[
        ColumnSpec(name="a", dtype="float", min=-3, max=3, max_null_share=0.2),
        ColumnSpec(name="n", dtype="int", min=0, max=50, max_null_share=0.2),
        ColumnSpec(name="flag", dtype="bool", max_null_share=0.2),
        ColumnSpec(name="color", dtype="category", categories=["red", "green", "blue"], max_null_share=0.2),
        ColumnSpec(name="size", dtype="category", categories=["s", "m", "l", "xl"]),
    ],
    target=TargetSpec(name="y", classes=["no", "maybe", "yes"]),
)


REGRESSION_SCHEMA = Schema(columns=MIXED_SCHEMA.columns, target=TargetSpec(name="y", task="regression"))


def mixed_rows(n: int, seed: int, messy: bool) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        r = {
            "a": float(rng.normal(0, 2)),
            "n": int(rng.integers(0, 60)),
            "flag": bool(rng.random() < 0.5),
            "color": str(rng.choice(["red", "green", "blue"])),
            "size": str(rng.choice(["s", "m", "l", "xl"])),
        }
        if messy:
            for col in ("a", "n", "flag", "color"):
                if rng.random() < 0.15:
                    r[col] = None
            if rng.random() < 0.15:
                r["color"] = "purple"  # unseen
            if rng.random() < 0.1:
                r["a"] = 1e6  # far out of range
        rows.append(r)
    return rows


def ratchet_predictor(version: str = "1"):
    """A real ratchet model in ~0.1 s: the ColumnTransformer fitted on rows with gaps and unseen
    categories, an (untrained) 3-class TabularMLP; bool, int, float, nullable and category inputs."""
    import torch

    from ratchet.training.model.fit import Predictor
    from ratchet.training.model.module import TabularMLP
    from ratchet.training.model.preprocess import build_preprocessor, frame_for_model

    train = pd.DataFrame(mixed_rows(300, seed=1, messy=True))
    pre = build_preprocessor(MIXED_SCHEMA)
    x = pre.fit_transform(frame_for_model(train, MIXED_SCHEMA))
    torch.manual_seed(0)
    module = TabularMLP(n_features=x.shape[1], n_classes=3, hidden=(16, 8), dropout=0.2)
    p = Predictor(pre, module, "ratchet.training.model.module.TabularMLP", MIXED_SCHEMA)
    p.version = version
    return p


@contextlib.contextmanager
def uvicorn_in_thread(app, **config):
    """``app`` served by uvicorn on a free loopback port in a thread (``config``: more of
    uvicorn's ``Config``); yields the server; stopped on exit."""
    import threading
    import time

    import uvicorn

    from ratchet.core.files import free_port

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def family_predictor(family: str, schema: Schema) -> Predictor:
    """A ratchet model of ``family``: the preprocessor and the bins fitted on messy rows (gaps, unseen
    categories, a far outlier), every weight drawn at random (no training: the zero-initialised
    piecewise-linear part of the embeddings must count too), in eval mode as served."""
    import torch

    from ratchet.training.model.families import FAMILIES
    from ratchet.training.model.fit import Predictor
    from ratchet.training.model.module import import_class
    from ratchet.training.model.preprocess import build_preprocessor, frame_for_model, layout

    train = pd.DataFrame(mixed_rows(400, seed=1, messy=True))
    pre = build_preprocessor(schema)
    x = torch.as_tensor(np.asarray(pre.fit_transform(frame_for_model(train, schema)), dtype=np.float32))
    cls = import_class(FAMILIES[family])
    regression = schema.target.is_regression
    args = {"n_features": x.shape[1], "n_classes": 1 if regression else 3, "hidden": [16, 16], "dropout": 0.2}
    if regression:
        args["task"] = "regression"
    if hasattr(cls, "data_args"):
        args.update(cls.data_args(x, *layout(pre, x.shape[1]), {"n_bins": 6}))
    torch.manual_seed(0)
    module = cls(**args)
    # answers that differ row to row; for the MLPs logits small enough that float32 rounding stays within
    # the load check's 1e-5 (at 0.5 their numpy and torch forwards parted by 1e-4 and torch served);
    # TabM averages its members, so it needs the larger weights to vary at all
    scale = 0.35 if family == "tabm" else 0.1  # 0.3: TabM's answers barely vary; 0.4: float32 rounding
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, scale)
    p = Predictor(pre, module, FAMILIES[family], schema, args, (3.0, 2.0) if regression else None)
    p.version = "1"
    return p
