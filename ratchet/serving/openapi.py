"""The service's OpenAPI document, with the request body of ``/predict`` typed by the
champion's schema (the routes read raw JSON so that every client error gets ratchet's
own message; this document tells clients, and schemathesis, what a good body is).

The document is rebuilt when the loaded champion changes.
"""

from __future__ import annotations

from typing import Any

from ratchet.core.schema import Schema

_INT64 = {"minimum": -(2**63), "maximum": 2**63 - 1}

_ERROR = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "row": {"type": ["integer", "null"]},
                    "field": {"type": ["string", "null"]},
                    "error": {"type": "string"},
                },
            },
        },
    },
}

_CLIENT_ERRORS = {
    "400": "body is not JSON (or not UTF-8, or nested too deeply)",
    "401": "credentials missing",
    "403": "credentials wrong",
    "404": "unknown request id (feedback)",
    "409": "feedback already given for this row",
    "413": "body over max_body_bytes, or more rows than max_rows",
    "415": "Content-Type is not application/json",
    "422": "the body does not fit the model's schema; `errors` names the row and field",
    "503": "no champion model is loaded yet",
}


def row_schema(schema: Schema | None) -> dict[str, Any]:
    """JSON Schema of one input row for ``schema`` (any object when no model is loaded)."""
    if schema is None:
        return {"type": "object", "description": "the loaded champion's input columns"}
    props: dict[str, Any] = {}
    for c in schema.features:
        if c.dtype == "float":
            p: dict[str, Any] = {"type": "number"}
        elif c.dtype == "int":
            p = {"type": "integer", **_INT64}
        elif c.dtype == "bool":
            p = {"type": "boolean"}
        elif c.dtype == "datetime":
            p = {"type": "string", "description": "an ISO 8601 date or date-time"}
            p["examples"] = ["2024-05-01T08:30:00Z"]
        else:  # unseen categories are served (and counted), so any string is valid
            p = {"type": "string", "examples": list(c.categories or [])[:10]}
        if c.min is not None or c.max is not None:
            p["description"] = f"expected within [{c.min}, {c.max}]; values outside are served and counted"
        if c.max_null_share > 0:
            p = {"anyOf": [p, {"type": "null"}]}
        props[c.name] = p
    for c in schema.ignored:  # accepted and dropped: the model does not use it
        props[c.name] = {"description": f"not used by the model ({c.ignore_reason or 'ignored'}); optional"}
    return {
        "type": "object",
        "properties": props,
        "required": schema.feature_names,
        "additionalProperties": bool(schema.allow_extra_columns),
    }


def predict_response(regression: bool) -> dict[str, Any]:
    """The ``/predict`` answer: labels with class probabilities, or (regression) a number per row."""
    common = {
        "model_version": {"type": "string"},
        "alias": {"type": "string", "enum": ["champion", "challenger"]},
        "request_id": {"type": "string"},
    }
    if regression:
        return {
            "type": "object",
            "required": ["predictions", "model_version", "alias", "request_id"],
            "properties": {"predictions": {"type": "array", "items": {"type": "number"}}, **common},
        }
    return {
        "type": "object",
        "required": ["predictions", "probabilities", "classes", "model_version", "alias", "request_id"],
        "properties": {
            "predictions": {"type": "array"},
            "probabilities": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "classes": {"type": "array"},
            **common,
        },
    }


def _json_body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _responses(ok_ref: str | None, statuses: tuple[str, ...], ok_doc: str = "OK") -> dict[str, Any]:
    out: dict[str, Any] = {
        "200": {
            "description": ok_doc,
            "content": {"application/json": {"schema": {"$ref": ok_ref} if ok_ref else {}}},
        }
    }
    for code in statuses:
        out[code] = {
            "description": _CLIENT_ERRORS[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return out


def build_openapi(base: dict[str, Any], schema: Schema | None, max_rows: int, api_key: bool, admin: bool) -> dict:
    """``base`` (FastAPI's generated document) with ratchet's bodies and responses filled in."""
    doc = dict(base)
    comps = dict(doc.get("components") or {})
    schemas = dict(comps.get("schemas") or {})
    entity_key = {"type": "string", "maxLength": 512, "description": "sticky routing key (optional)"}
    schemas["Row"] = row_schema(schema)
    schemas["PredictRequest"] = {
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "rows": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Row"},
                        "minItems": 1,
                        "maxItems": max_rows,
                    },
                    "entity_key": entity_key,
                },
                "required": ["rows"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"row": {"$ref": "#/components/schemas/Row"}, "entity_key": entity_key},
                "required": ["row"],
                "additionalProperties": False,
            },
        ]
    }
    regression = schema is not None and schema.target.is_regression
    schemas["PredictResponse"] = predict_response(regression)
    # a regression target's label is a number; a class label a string or a number
    label = {"type": "number"} if regression else {"type": ["string", "number"]}
    schemas["FeedbackRequest"] = {
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "request_id": {"type": "string", "minLength": 1},
                    "label": label,
                    "row": {"type": "integer", "minimum": 0},
                },
                "required": ["request_id", "label"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {
                    "request_id": {"type": "string", "minLength": 1},
                    "labels": {"type": "array", "items": label, "minItems": 1},
                },
                "required": ["request_id", "labels"],
                "additionalProperties": False,
            },
        ]
    }
    schemas["Traffic"] = {
        "type": "object",
        "properties": {
            "challenger_share": {"type": "number", "minimum": 0, "maximum": 1},
            "shadow": {"type": "boolean"},
        },
        "required": ["challenger_share"],
        "additionalProperties": False,
    }
    schemas["Error"] = _ERROR
    comps["schemas"] = schemas
    security = {}
    if api_key:
        security["ApiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    if admin:
        security["AdminToken"] = {"type": "http", "scheme": "bearer"}
    if security:
        comps["securitySchemes"] = security
    doc["components"] = comps

    paths = {k: dict(v) for k, v in (doc.get("paths") or {}).items()}
    key_errors = ("401", "403") if api_key else ()
    admin_errors = ("401", "403") if admin else ()

    def op(path: str, method: str, **fields: Any) -> None:
        if path in paths and method in paths[path]:
            paths[path][method] = {**paths[path][method], **fields}

    op(
        "/predict", "post",
        requestBody=_json_body("#/components/schemas/PredictRequest"),
        responses=_responses(
            "#/components/schemas/PredictResponse", ("400", *key_errors, "413", "415", "422", "503")
        ),
        **({"security": [{"ApiKey": []}]} if api_key else {}),
    )
    op(
        "/feedback", "post",
        requestBody=_json_body("#/components/schemas/FeedbackRequest"),
        responses=_responses(None, ("400", *key_errors, "404", "409", "413", "415", "422")),
        **({"security": [{"ApiKey": []}]} if api_key else {}),
    )
    op(
        "/admin/traffic", "put",
        requestBody=_json_body("#/components/schemas/Traffic"),
        responses=_responses(None, ("400", *admin_errors, "413", "415", "422")),
        **({"security": [{"AdminToken": []}]} if admin else {}),
    )
    if "/admin/reload" in paths and "post" in paths["/admin/reload"]:
        reload_op = paths["/admin/reload"]["post"]
        responses = _responses(None, (*admin_errors, "422"))
        responses["502"] = {"description": "the registry failed; the old models keep serving"}
        paths["/admin/reload"]["post"] = {
            **reload_op,
            "responses": responses,
            **({"security": [{"AdminToken": []}]} if admin else {}),
        }
    op("/ready", "get", responses={
        "200": {"description": "a champion is loaded", "content": {"application/json": {"schema": {}}}},
        "503": {"description": "no champion yet", "content": {"application/json": {"schema": {}}}},
    })
    op("/metrics", "get", responses={
        "200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}
    })
    _v2_operations(op, schemas, max_rows, key_errors, api_key)
    doc["paths"] = paths
    return doc


_V2_ERRORS = {
    "400": "an output this model does not give, or a body that is not JSON",
    "401": "credentials missing", "403": "credentials wrong",
    "404": "another model name, or a version that is not loaded",
    "413": "body over max_body_bytes, or more rows than max_rows",
    "415": "a Content-Type other than application/json (the binary tensor extension is not served)",
    "422": "the tensors do not fit the model's schema",
    "503": "no champion model is loaded yet",
}


def _v2_responses(statuses: tuple[str, ...], ok: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": ok or {}}}}}
    for code in statuses:
        out[code] = {"description": _V2_ERRORS[code],
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return out


def _v2_operations(op, schemas: dict[str, Any], max_rows: int, key_errors: tuple[str, ...], api_key: bool) -> None:
    """The Open Inference Protocol's routes (``ratchet.serving.v2``): its bodies and statuses."""
    schemas["InferTensor"] = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "description": "a feature column"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": max_rows},
                      "minItems": 1, "maxItems": 2, "description": "[rows] or [rows, 1]"},
            "datatype": {"type": "string", "enum": ["BOOL", "INT64", "FP64", "FP32", "INT32", "BYTES"]},
            "data": {"type": "array"},
        },
    }
    schemas["InferRequest"] = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object", "properties": {"entity_key": {"type": "string", "maxLength": 512}}},
            "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/InferTensor"}, "minItems": 1},
            "outputs": {"type": "array", "items": {"type": "object", "required": ["name"],
                                                     "properties": {"name": {"type": "string"}}}},
        },
    }
    schemas["InferResponse"] = {
        "type": "object",
        "required": ["model_name", "model_version", "id", "outputs"],
        "properties": {
            "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
            "parameters": {"type": "object"},
            "outputs": {"type": "array", "items": {"type": "object", "required": ["name", "shape", "datatype", "data"]}},
        },
    }
    infer = {
        "requestBody": _json_body("#/components/schemas/InferRequest"),
        "responses": _v2_responses(("400", *key_errors, "404", "413", "415", "422", "503"),
                                   {"$ref": "#/components/schemas/InferResponse"}),
        **({"security": [{"ApiKey": []}]} if api_key else {}),
    }
    op("/v2/models/{name}/infer", "post", **infer)
    op("/v2/models/{name}/versions/{version}/infer", "post", **infer)
    for path in ("/v2/models/{name}", "/v2/models/{name}/ready", "/v2/models/{name}/versions/{version}",
                 "/v2/models/{name}/versions/{version}/ready"):
        op(path, "get", responses=_v2_responses(("404", "503")))
    op("/v2/health/ready", "get", responses=_v2_responses(("503",)))
