"""The inference service's admin API over HTTP: the only way the canary drives the service
(``GET /health``, ``GET /stats``, ``PUT /admin/traffic``, ``POST /admin/reload``)."""

from __future__ import annotations

import httpx


class CanaryError(RuntimeError):
    """The canary cannot go on (service unreachable, wrong versions loaded, ...)."""


class AdminClient:
    """The inference service's admin API over HTTP, with a bearer token when one is set."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 10.0, transport=None):
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def __repr__(self) -> str:  # never the token
        return f"AdminClient({self.url!r})"

    def _call(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kw) -> dict:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise CanaryError(f"{method} {self.url}{path} failed: {type(e).__name__}: {e}") from e
        if r.status_code not in ok:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise CanaryError(f"{method} {self.url}{path}: HTTP {r.status_code}: {detail}")
        return r.json()

    def health(self) -> dict:
        return self._call("GET", "/health")

    def stats(self) -> dict:
        return self._call("GET", "/stats")

    def set_traffic(self, share: float, shadow: bool = False) -> dict:
        return self._call("PUT", "/admin/traffic", json={"challenger_share": float(share), "shadow": shadow})

    def reload(self, force: bool = False) -> dict:
        """Reload; a 502 (the registry failed, old models keep serving) comes back as a body."""
        return self._call("POST", "/admin/reload", ok=(200, 502), params={"force": str(force).lower()})

    def close(self) -> None:
        self._http.close()
