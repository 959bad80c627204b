"""How choreoctl reaches one API server: its identity and three transports.

:class:`ApiTransport` holds what every request to one API server shares (the token,
re-read from a projected token file now and then, and the TLS context) and the three
ways to send one, each made on first use:

- :meth:`ApiTransport.call` and :meth:`ApiTransport.send`, the typed verbs' path, on
  :mod:`choreoctl.kube.http1`: a small HTTP/1.1 client that costs a fraction of httpx's
  CPU per request (what bounds preflight and installs across many clusters) and, unlike
  aiohttp, nothing to import. They ask for gzip and decompress it themselves.
- :meth:`ApiTransport.open_raw`, the cluster agent's byte-for-byte relay, on aiohttp
  (:mod:`choreoctl.kube.raw`).
- :meth:`ApiTransport.request`, an ``httpx.Response`` for callers that want one, and
  watches, on httpx.

Every failure becomes a :class:`~choreoctl.errors.ClusterError` that names the cluster.
:class:`~choreoctl.kube.client.KubeClient` builds the verbs on top.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import zlib
from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from choreoctl.errors import ApiError, ApplyConflict, ClusterError, ClusterUnreachable, Problem
from choreoctl.kube.http1 import Http1Client
from choreoctl.kube.raw import RawResponse, RawTransport

if TYPE_CHECKING:
    import httpx

Obj = dict[str, Any]
_PHRASES = {int(c): c.phrase for c in HTTPStatus}


class ApiTransport:
    """One API server's identity (token, TLS) and the transports that reach it.

    ``max_in_flight`` > 0 caps the typed requests in flight (so the kept-alive
    connections), for callers that fan out many small reads (preflight, doctor).
    """

    def __init__(
        self,
        server: str,
        token: str | None = None,
        ca_file: str | None = None,
        client_cert: tuple[str, str] | None = None,
        verify: bool = True,
        *,
        name: str = "",
        token_file: str | None = None,
        timeout: float = 30.0,
        max_in_flight: int = 0,
    ) -> None:
        self.server = server.rstrip("/")
        self._name = name or self.server
        self._token = token
        self._token_file = token_file
        self._token_read = time.monotonic()
        verify_arg: ssl.SSLContext | bool = False
        if verify:
            ctx = ssl.create_default_context(cafile=ca_file)
            verify_arg = ctx
        if client_cert is not None:
            if not isinstance(verify_arg, ssl.SSLContext):
                verify_arg = ssl.create_default_context()
                verify_arg.check_hostname = False
                verify_arg.verify_mode = ssl.CERT_NONE
            verify_arg.load_cert_chain(*client_cert)
        self._tls = verify_arg
        self._timeout = timeout
        self._httpx: httpx.AsyncClient | None = None
        self._raw = RawTransport(self.server, verify_arg, timeout, self.name)
        self._h1 = Http1Client(self.server, verify_arg, timeout, self.name)
        # Every new TLS connection costs the API server an RSA signature (~2 ms CPU on
        # each side against ~0.3 ms for a request on a kept-alive one), and HTTP/1.1
        # opens one per concurrent request: a cap keeps a few connections busy instead.
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight > 0 else None

    @property
    def name(self) -> str:
        """How errors name this cluster, e.g. ``data (prod-eu)``; callers may rename it."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value
        self._raw.name = self._h1.name = value  # transports name the cluster in errors

    @property
    def _http(self) -> httpx.AsyncClient:
        """The httpx client, made on first use (only ``request`` and watches need it)."""
        if self._httpx is None:
            import httpx

            self._httpx = httpx.AsyncClient(
                base_url=self.server, verify=self._tls, timeout=self._timeout, trust_env=False
            )
        return self._httpx

    async def aclose(self) -> None:
        """Close the connections of every transport."""
        if self._httpx is not None:
            await self._httpx.aclose()
        await self._raw.aclose()
        await self._h1.aclose()

    # -- requests -------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header; a token file is re-read each minute (it rotates)."""
        if self._token_file and time.monotonic() - self._token_read > 60:
            try:
                self._token = Path(self._token_file).read_text().strip()
                self._token_read = time.monotonic()
            except OSError:
                pass  # keep the last token; the server will say if it expired
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        stream: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request as-is and return the response, whatever its status.

        With ``stream=True`` the body is not read; the caller must ``aclose()`` it.
        Only transport failures raise (:class:`ClusterUnreachable`).
        """
        import httpx

        hdrs = self.auth_headers()
        hdrs.update(headers or {})
        req = self._http.build_request(
            method,
            path,
            params=params,
            headers=hdrs,
            content=content,
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
        )
        try:
            return await self._http.send(req, stream=stream)
        except httpx.TimeoutException as e:
            raise ClusterUnreachable.no_answer(self.name, self.server, type(e).__name__) from e
        except httpx.TransportError as e:
            raise ClusterUnreachable.cannot_reach(self.name, self.server, e) from e

    async def open_raw(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """Relay one request byte for byte (``url``: path and query, already encoded).

        The cheap path for forwarding (the cluster agent): the body is neither decoded
        nor buffered; read it with :meth:`RawResponse.iter_raw` and always close it.
        ``timeout`` bounds connecting and each read; ``None`` lets a watch stay quiet.
        Only transport failures raise (:class:`ClusterUnreachable`).
        """
        hdrs = self.auth_headers()
        hdrs.update(headers or {})
        return await self._raw.open(method, url, hdrs, content, timeout)

    async def send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        headers: dict[str, str],
        content: bytes | None,
    ) -> tuple[int, bytes]:
        """One request on the lean transport: the status and the whole (decoded) body."""
        url = f"{path}?{urlencode(params, doseq=True)}" if params else path
        headers["Accept-Encoding"] = "gzip"  # the transport keeps bytes as sent: decode here
        if self._slots is None:
            status, body, encoding = await self._exchange(method, url, headers, content)
        else:
            async with self._slots:
                status, body, encoding = await self._exchange(method, url, headers, content)
        if encoding.lower() == "gzip":
            try:
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            except zlib.error as e:
                raise ClusterError(
                    f"{self.name}: {method} {path}: a corrupt gzip body ({e})",
                    hint="check the API server and any proxy in front of it",
                ) from e
        elif encoding.lower() != "identity":
            raise ClusterError(
                f"{self.name}: {method} {path}: unexpected Content-Encoding {encoding!r}",
                hint="a proxy in front of the API server re-encodes responses; bypass it",
            )
        return status, body

    async def _exchange(
        self, method: str, url: str, headers: dict[str, str], content: bytes | None
    ) -> tuple[int, bytes, str]:
        headers.update(self.auth_headers())
        status, head, body = await self._h1.exchange(method, url, headers, content, self._timeout)
        encoding = next((v for k, v in head if k.lower() == "content-encoding"), "identity")
        return status, body, encoding

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        ok_missing: bool = False,
    ) -> Obj | None:
        content = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = content_type
        status, raw = await self.send(method, path, params, headers, content)
        if status == 404 and ok_missing:
            return None
        if status >= 400:
            raise self.error_from(method, path, status, raw)
        if not raw:
            return {}
        data: Obj = json.loads(raw)
        return data

    def api_error(self, method: str, path: str, resp: httpx.Response) -> ApiError:
        return self.error_from(method, path, resp.status_code, resp.content)

    def error_from(self, method: str, path: str, code: int, raw: bytes) -> ApiError:
        try:
            status: Obj = json.loads(raw)
            if not isinstance(status, dict):
                raise ValueError("not a Status object")
        except ValueError:
            status = {"message": raw[:300].decode("utf-8", "replace")}
        message = str(status.get("message") or _PHRASES.get(code, ""))
        reason = str(status.get("reason") or "")
        hint = {
            401: "the credentials were refused: refresh the kubeconfig token or certificate",
            403: "the identity lacks RBAC permission for this; see `choreoctl preflight`",
            404: "the object or its kind does not exist in this cluster",
            409: "another writer changed or owns this object; retry, or use --force-conflicts",
            422: "the object was rejected by the schema or a validation rule",
        }.get(code, "")
        if code == 409 and reason == "Conflict" and "conflict" in message.lower():
            causes = status.get("details", {}).get("causes", []) or []
            lines = [f"{c.get('field', '?')}: {c.get('message', '')}" for c in causes]
            return ApplyConflict(
                f"{self.name}: {method} {path}: {message}",
                hint="another field manager owns these fields; re-run with "
                "--force-conflicts to take them over",
                status=409,
                reason=reason,
                problems=tuple(Problem(line) for line in lines),
            )
        return ApiError(
            f"{self.name}: {method} {path}: {code} {message}",
            hint=hint,
            status=code,
            reason=reason,
        )

    async def server_date(self) -> str:
        """The API server's clock: the ``Date`` header of its answer ("" without one)."""
        headers = {"Accept": "application/json", **self.auth_headers()}
        _, head, _ = await self._h1.exchange("GET", "/version", headers, None, self._timeout)
        return next((v for k, v in head if k.lower() == "date"), "")
