"""lakeFS's published API contract: its OpenAPI document, vendored, and checks against it.

``tests/data/lakefs/swagger.yml`` is ``api/swagger.yml`` of treeverse/lakeFS (Apache-2.0:
``LICENSE`` and ``NOTICE`` beside it; provenance in ``README.md`` there), the document the
pinned ``lakefs-sdk`` is generated from. The stand-in (``lakefs_standin``) checks every request
the backend sends and every answer it gives against it, with openapi-core: a request off the
contract is answered 400 as lakeFS's own validator (kin-openapi) would, an answer off the
contract becomes a 500, and both are recorded so the test that caused them fails even when the
backend would swallow the error.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

SWAGGER = Path(__file__).resolve().parent / "lakefs" / "swagger.yml"


@functools.cache
def lakefs_openapi():
    """The vendored document, parsed once per process (about a second)."""
    from openapi_core import OpenAPI

    return OpenAPI.from_file_path(str(SWAGGER))


@dataclass
class ContractRequest:
    """An HTTP request as openapi-core reads it (its ``Request`` protocol)."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    parameters: Any = field(init=False)

    def __post_init__(self) -> None:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        self.method = self.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(self.query), header=Headers(self.headers), cookie=ImmutableMultiDict()
        )

    @classmethod
    def of(cls, host_url: str, method: str, raw_path: str, headers: Any, body: bytes) -> ContractRequest:
        url = urlsplit(raw_path)
        hdrs = {k: v for k, v in headers.items()}
        ctype = (hdrs.get("Content-Type") or hdrs.get("content-type") or "").lower()
        return cls(host_url, unquote(url.path), method, body or None, ctype,
                   parse_qsl(url.query, keep_blank_values=True), hdrs)


@dataclass
class ContractResponse:
    """An HTTP answer as openapi-core reads it (its ``Response`` protocol)."""

    status_code: int
    data: bytes | None
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def _describe(e: Exception) -> str:
    """The error and the schema errors under it, on one line."""
    parts = [f"{type(e).__name__}: {e}"]
    cause = e.__cause__
    while cause is not None:
        for se in getattr(cause, "schema_errors", ()) or ():
            parts.append(getattr(se, "message", str(se)))
        if not getattr(cause, "schema_errors", None):
            parts.append(str(cause))
        cause = cause.__cause__
    return " | ".join(dict.fromkeys(p.replace("\n", " ") for p in parts if p))


def request_errors(request: ContractRequest) -> list[str]:
    """What in ``request`` the lakeFS document does not allow (empty: it conforms)."""
    return [_describe(e) for e in lakefs_openapi().iter_request_errors(request)]


def response_errors(request: ContractRequest, response: ContractResponse) -> list[str]:
    """What in ``response`` (to ``request``) the lakeFS document does not allow."""
    from openapi_core.validation.response.exceptions import MissingData

    errors = lakefs_openapi().iter_response_errors(request, response)
    # openapi-core counts an empty body as missing, but an empty object's content is a valid
    # ``string, format: binary`` (lakeFS answers 200 with Content-Length 0)
    empty_object = response.content_type == "application/octet-stream" and response.data == b""
    return [_describe(e) for e in errors if not (empty_object and isinstance(e, MissingData))]
