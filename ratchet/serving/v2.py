"""The Open Inference Protocol (KServe V2) over REST, beside ``/predict`` on the same service.

The protocol KServe, Seldon Core 2, MLServer and Triton speak, so their clients
(``tritonclient[http]``, the ``kserve`` SDK), gateways and load testers talk to ratchet as is:

``GET  /v2/health/live``                       200 while the process lives
``GET  /v2/health/ready``                      200 once a champion is loaded, else 503
``GET  /v2``                                   server metadata (name, version, extensions: none)
``GET  /v2/models/{name}[/versions/{v}]``      model metadata: one input tensor per feature column
                                               (MLServer's pandas-codec convention, shape ``[-1, 1]``):
                                               ``BYTES`` for text (categories, dates), ``FP64``,
                                               ``INT64``, ``BOOL`` for the rest; outputs
                                               ``predictions`` ``[-1]``, ``probabilities`` ``[-1, k]``
                                               and ``classes`` ``[k]`` (a regression model:
                                               ``predictions`` in FP64 only)
``GET  /v2/models/{name}[/versions/{v}]/ready`` 200 when that model (version) is loaded, else 503/404
``POST /v2/models/{name}/infer``               the champion/challenger split, as ``/predict``
``POST /v2/models/{name}/versions/{v}/infer``  ``v`` must answer: the loaded champion or challenger
                                               (404 otherwise), no traffic split

``{name}`` is the registered model's name (``model_name`` in ratchet.yaml); another name is a
404. An infer request is ``{"id"?, "parameters"?: {"entity_key"?}, "inputs": [{"name": column,
"shape": [n] or [n, 1], "datatype", "data": [...]}, ...], "outputs"?: [{"name"}, ...]}``; its
columns become ``n`` rows that go through :class:`~ratchet.serving.predict.PredictHandler`'s one
code path (routing, canary, shadow, validation, limits, lineage headers, metrics, profiling,
feedback): only parsing and rendering differ. The answer carries ``id`` (the request's, else the
request id), ``model_version``, and ``parameters`` ``request_id`` (what ``/feedback`` takes) and
``alias``. Errors are ratchet's ``{"detail", "request_id"}`` plus the protocol's ``"error"``.

JSON tensors only: the binary tensor extension (``application/octet-stream`` bodies) is a 415;
outputs are always JSON, which tritonclient reads whatever ``binary_data_output`` asked.
gRPC is not served: the REST protocol reaches every client named above, and a second server
(grpcio, its own port and thread pool) would double what the service must keep alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from ratchet.core.schema import Schema
from ratchet.serving.middleware import request_id_of
from ratchet.serving.predict import PredictHandler, Protocol, pinned_slot
from ratchet.serving.state import ServingRuntime, Slot, Snapshot, Steps
from ratchet.serving.validation import RequestError, json_type, parse_entity_key

SERVER_NAME = "ratchet"
OUTPUTS = ("predictions", "probabilities", "classes")  # a regression model gives the first only
# schema dtype -> tensor datatype (text and dates travel as BYTES, i.e. JSON strings)
DATATYPES = {"float": "FP64", "int": "INT64", "bool": "BOOL", "category": "BYTES", "datetime": "BYTES"}
TENSOR_TYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
                "FP16", "FP32", "FP64", "BYTES"}


@dataclass
class InferRequest:
    rows: list[dict]
    entity_key: str | None
    id: str | None
    outputs: list[str] | None  # the output tensors asked for; None: all


def _flat(data: object, name: str) -> list:
    """A tensor's ``data``: flat, or one row per inner array (``[[v], [v], ...]``: the protocol allows
    row-major nesting, and a column tensor has one value per row)."""
    if not isinstance(data, list):
        raise RequestError(422, f"input {name!r}: 'data' must be an array, got {json_type(data)}")
    if not any(type(v) is list for v in data):
        return data
    out: list = []
    for v in data:
        if not isinstance(v, list) or any(isinstance(x, list | dict) for x in v):
            raise RequestError(422, f"input {name!r}: 'data' must be flat or one array of values per row")
        out.extend(v)
    return out


def parse_infer_body(obj: object, max_rows: int) -> InferRequest:
    """An infer request's columns as rows (``{column: value}``), for the row validator."""
    if not isinstance(obj, dict):
        raise RequestError(422, f"body must be a JSON object with 'inputs', got {json_type(obj)}")
    # model_name/model_version: what the kserve SDK repeats in the body (the path decides)
    unknown = sorted(set(obj) - {"id", "parameters", "inputs", "outputs", "model_name", "model_version"})
    if unknown:
        raise RequestError(422, f"unknown top-level field(s) {unknown}: expected 'inputs' and optionally "
                                "'id', 'parameters', 'outputs'")
    inputs = obj.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(422, "field 'inputs' must be a non-empty array of tensors")
    columns: dict[str, list] = {}
    n: int | None = None
    for i, t in enumerate(inputs):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise RequestError(422, f"inputs[{i}] must be an object with a string 'name'")
        name = t["name"]
        if name in columns:
            raise RequestError(422, f"input {name!r} is given twice")
        if t.get("datatype") not in TENSOR_TYPES:
            raise RequestError(422, f"input {name!r}: 'datatype' must be one of {sorted(TENSOR_TYPES)}, "
                                    f"got {t.get('datatype')!r}")
        shape = t.get("shape")
        # exact types: a bool is no dimension (and an exact check is cheaper, per tensor per request)
        if (type(shape) is not list or not 1 <= len(shape) <= 2 or type(shape[0]) is not int or shape[0] < 0
                or (len(shape) == 2 and (type(shape[1]) is not int or shape[1] != 1))):
            raise RequestError(422, f"input {name!r}: 'shape' must be [rows] or [rows, 1] (one column per "
                                    f"tensor), got {shape!r}")
        rows = shape[0]
        if rows > max_rows:
            raise RequestError(413, f"input {name!r} has {rows} rows, more than max_rows={max_rows}")
        data = _flat(t.get("data"), name)
        if len(data) != rows:
            raise RequestError(422, f"input {name!r}: shape {shape} needs {rows} values, 'data' has {len(data)}")
        if n is not None and rows != n:
            raise RequestError(422, f"input {name!r} has {rows} rows, the inputs before it {n}")
        n = rows
        columns[name] = data
    if not n:
        raise RequestError(422, "the inputs have no rows")
    params = obj.get("parameters") or {}
    if not isinstance(params, dict):
        raise RequestError(422, f"field 'parameters' must be an object, got {json_type(params)}")
    outputs = obj.get("outputs")
    names = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                    for o in outputs):
            raise RequestError(422, "field 'outputs' must be an array of objects with a string 'name'")
        names = [o["name"] for o in outputs]
        unknown = [n for n in names if n not in OUTPUTS]
        if unknown:  # before the model runs: a request refused is not recorded as served
            raise RequestError(400, f"unknown output(s) {unknown}: the outputs are {list(OUTPUTS)}")
    rid = obj.get("id")
    if rid is not None and not isinstance(rid, str):
        raise RequestError(422, f"field 'id' must be a string, got {json_type(rid)}")
    keys = list(columns)
    rows_out = [dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    return InferRequest(rows_out, parse_entity_key(params.get("entity_key"), "parameter 'entity_key'"), rid, names)


def label_datatype(classes: tuple | list) -> str:
    """The tensor type of a classifier's labels."""
    if classes and all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "INT64"
    if classes and all(isinstance(c, int | float) and not isinstance(c, bool) for c in classes):
        return "FP64"
    return "BYTES"


def _output_specs(slot: Slot) -> list[dict[str, Any]]:
    if slot.regression:
        return [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
    k = len(slot.classes)
    dt = label_datatype(slot.classes)
    return [{"name": "predictions", "datatype": dt, "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, k]},
            {"name": "classes", "datatype": dt, "shape": [k]}]


def input_specs(schema: Schema) -> list[dict[str, Any]]:
    """One tensor per feature column (MLServer's pandas codec: a column is a ``[-1, 1]`` tensor)."""
    return [{"name": c.name, "datatype": DATATYPES.get(c.dtype, "BYTES"), "shape": [-1, 1]} for c in schema.features]


class V2Protocol:
    """The endpoints of the Open Inference Protocol for the model ``model_name``."""

    def __init__(self, runtime: ServingRuntime, handler: PredictHandler, model_name: str):
        self.runtime, self.handler, self.model_name = runtime, handler, model_name
        self.protocol = Protocol(parse=parse_infer_body, render=self.render, client_error=error_response,
                                 model_error=model_failure_response, untyped_ok=True)

    @property
    def infer_path(self) -> str:
        return f"/v2/models/{self.model_name}/infer"

    # ------------------------------------------------------------ infer
    def render(self, req: InferRequest, rid: str, slot: Slot, alias: str, labels: list,
               proba: np.ndarray | None) -> dict:
        n = len(labels)
        if proba is None:
            outputs = [{"name": "predictions", "datatype": "FP64", "shape": [n], "data": labels}]
        else:
            dt = label_datatype(slot.classes)
            outputs = [
                {"name": "predictions", "datatype": dt, "shape": [n], "data": labels},
                {"name": "probabilities", "datatype": "FP64", "shape": [n, proba.shape[1]],
                 "data": proba.ravel().tolist()},
                {"name": "classes", "datatype": dt, "shape": [len(slot.classes)], "data": list(slot.classes)},
            ]
        if req.outputs is not None:
            have = {o["name"]: o for o in outputs}
            missing = [name for name in req.outputs if name not in have]
            if missing:
                raise RequestError(400, f"output(s) {missing} not given by this model: it gives {sorted(have)}")
            outputs = [have[name] for name in req.outputs]
        return {
            "model_name": self.model_name,
            "model_version": slot.version,
            "id": req.id if req.id is not None else rid,
            "parameters": {"request_id": rid, "alias": alias},
            "outputs": outputs,
        }

    async def infer_direct(self, scope, receive) -> Response:
        """``POST /v2/models/{name}/infer`` as plain ASGI (the middleware's direct table)."""
        return await self.handler.handle(scope, receive, self.protocol)

    def infer_inline(self, scope, body: bytes) -> Steps:
        """The same without ASGI (``PredictHandler.answer``)."""
        return self.handler.answer(scope, body, self.protocol)

    async def infer(self, request: Request, name: str):
        return await self._infer(request, name, None)

    async def infer_version(self, request: Request, name: str, version: str):
        return await self._infer(request, name, version)

    async def _infer(self, request: Request, name: str, version: str | None) -> Response:
        try:
            self._model(name)
        except RequestError as e:
            return error_response(e, request_id_of(request.scope))
        return await self.handler.handle(request.scope, request.receive, self.protocol, pin=version)

    # ------------------------------------------------------------ health and metadata
    async def _snapshot(self) -> Snapshot:
        if not self.runtime.is_started:
            await run_in_threadpool(self.runtime.ensure_started)
        return self.runtime.snapshot

    def _model(self, name: str) -> None:
        if name != self.model_name:
            raise RequestError(404, f"model {name!r} is not served here: this server serves {self.model_name!r}")

    async def live(self):
        return {"live": True}

    async def ready(self):
        snap = await self._snapshot()
        return JSONResponse({"ready": snap.ready}, status_code=200 if snap.ready else 503)

    async def server_metadata(self):
        from importlib.metadata import PackageNotFoundError, version

        try:
            own = version("ratchet")
        except PackageNotFoundError:  # run from a source tree that is not installed
            own = "0+unknown"
        return {"name": SERVER_NAME, "version": own, "extensions": []}

    async def _slot(self, name: str, version: str | None) -> Slot:
        self._model(name)
        snap = await self._snapshot()
        if version is not None:
            return pinned_slot(snap, version)[0]
        if snap.champion is None:
            raise RequestError(503, "no champion model is loaded yet")
        return snap.champion

    async def model_metadata(self, request: Request, name: str):
        return await self._about(request, name, None, self._metadata)

    async def version_metadata(self, request: Request, name: str, version: str):
        return await self._about(request, name, version, self._metadata)

    async def model_ready(self, request: Request, name: str):
        return await self._about(request, name, None, self._ready)

    async def version_ready(self, request: Request, name: str, version: str):
        return await self._about(request, name, version, self._ready)

    async def _about(self, request: Request, name: str, version: str | None, describe) -> dict | Response:
        """``describe(slot, version)`` of the model (version) asked for, or the protocol's error."""
        try:
            slot = await self._slot(name, version)
        except RequestError as e:
            return error_response(e, request_id_of(request.scope))
        return describe(slot, version)

    def _metadata(self, slot: Slot, version: str | None) -> dict:
        snap = self.runtime.snapshot
        versions = [s.version for s in (snap.champion, snap.challenger) if s is not None]
        return {
            "name": self.model_name,
            "versions": [slot.version] if version is not None else versions,
            "platform": "ratchet",
            "inputs": input_specs(slot.validator.schema),
            "outputs": _output_specs(slot),
        }

    def _ready(self, slot: Slot, version: str | None) -> dict:
        return {"name": self.model_name, "version": slot.version, "ready": True}

    def add_routes(self, app) -> None:
        """The protocol's routes on ``app`` (``create_app``); ``infer_path`` also goes in the
        middleware's direct table."""
        base = "/v2/models/{name}"
        app.add_api_route("/v2/health/live", self.live, methods=["GET"])
        app.add_api_route("/v2/health/ready", self.ready, methods=["GET"])
        app.add_api_route("/v2", self.server_metadata, methods=["GET"])
        app.add_api_route(base, self.model_metadata, methods=["GET"])
        app.add_api_route(base + "/ready", self.model_ready, methods=["GET"])
        app.add_api_route(base + "/infer", self.infer, methods=["POST"])
        app.add_api_route(base + "/versions/{version}", self.version_metadata, methods=["GET"])
        app.add_api_route(base + "/versions/{version}/ready", self.version_ready, methods=["GET"])
        app.add_api_route(base + "/versions/{version}/infer", self.infer_version, methods=["POST"])


def error_response(exc: RequestError, rid: str | None) -> JSONResponse:
    """ratchet's client error with the protocol's ``error`` field (what tritonclient shows)."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"error": exc.message, **exc.body(), "request_id": rid}, status_code=exc.status,
                        headers=headers)


def model_failure_response(rid: str | None) -> JSONResponse:
    message = "the model failed on this input"
    return JSONResponse({"error": message, "detail": message, "request_id": rid}, status_code=500)
