"""A lean aiohttp transport for forwarding requests byte for byte (the cluster agent's path).

Why aiohttp for the relay: httpx spends ~0.9 ms CPU per request against ~0.15 ms for
aiohttp (measured in-process, same server), and its C parser streams large bodies
cheaply. The relay uses it raw: status, headers as sent, the body undecoded and
streamed as it arrives. The typed verbs ride :mod:`choreoctl.kube.http1` instead
(nothing to import); httpx remains for ``KubeClient.request`` and watches.
Credentials, TLS verification and timeouts are the client's own (the same
``SSLContext`` and token); transport failures become
:class:`~choreoctl.errors.ClusterUnreachable`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from choreoctl.errors import ClusterUnreachable

if TYPE_CHECKING:
    import aiohttp


class RawResponse:
    """An open upstream response: status, headers in wire order, the body as it arrives.

    Always :meth:`close` it (``async with`` does).
    """

    def __init__(self, resp: aiohttp.ClientResponse, source: str) -> None:
        self._resp = resp
        self._source = source
        self.status_code = resp.status

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Every response header, repeated names kept (as sent, minus aiohttp's folding)."""
        return list(self._resp.headers.items())

    @property
    def content_length(self) -> int | None:
        """The body's length when the API server declared it (small objects), else None."""
        return self._resp.content_length

    async def read(self) -> bytes:
        """The whole body in one call (for a declared, bounded length: see
        :attr:`content_length`); cheaper than iterating for a small object."""
        import aiohttp

        try:
            return await self._resp.content.read()
        except (aiohttp.ClientError, OSError) as e:
            raise self._broken_off(e) from e

    async def iter_raw(self) -> AsyncIterator[bytes]:
        """Body bytes as they come off the socket (no decoding, no re-chunking)."""
        import aiohttp

        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError) as e:
            raise self._broken_off(e) from e

    def _broken_off(self, e: BaseException) -> ClusterUnreachable:
        return ClusterUnreachable.broken_off(self._source, e)

    async def close(self) -> None:
        """Give the connection back (or drop it when the body was not read to the end)."""
        self._resp.release()

    async def __aenter__(self) -> RawResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class RawTransport:
    """One aiohttp session to one API server, created on first use."""

    def __init__(self, server: str, tls: ssl.SSLContext | bool, timeout: float, name: str) -> None:
        self.server = server
        self.name = name
        self._tls: ssl.SSLContext | bool = tls if server.startswith("https") else False
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        # one ClientTimeout per read timeout: building one per request was ~2 % of the
        # agent's CPU per relayed request
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}

    def _open_session(self) -> aiohttp.ClientSession:
        import aiohttp

        connector = aiohttp.TCPConnector(ssl=self._tls, limit=100, enable_cleanup_closed=False)
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # relay the bytes as the API server sent them
            trust_env=False,  # like the httpx client: no proxy between agent and API server
            # like httpx: no invented Content-Type for a body the caller did not type
            skip_auto_headers=("Content-Type",),
            headers={"User-Agent": "choreoctl"},
        )

    async def open(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None,
        timeout: float | None,
    ) -> RawResponse:
        """Send a request (``url`` is path plus query) and return once the headers arrived.

        ``timeout`` bounds connecting and each read (``None``: a watch may stay silent).
        """
        import aiohttp

        if self._session is None:
            self._session = self._open_session()
        t = self._timeouts.get(timeout)
        if t is None:
            if len(self._timeouts) > 16:
                self._timeouts.clear()  # callers use a handful of values; stay bounded
            t = self._timeouts[timeout] = aiohttp.ClientTimeout(
                total=None, sock_connect=self._timeout, sock_read=timeout
            )
        try:
            resp = await self._session.request(
                method,
                self.server + url,
                headers=dict(headers),
                data=content,
                timeout=t,
                allow_redirects=False,
            )
        except TimeoutError as e:
            raise ClusterUnreachable.no_answer(self.name, self.server, type(e).__name__) from e
        except (aiohttp.ClientError, OSError, ValueError) as e:
            raise ClusterUnreachable.cannot_reach(self.name, self.server, e) from e
        return RawResponse(resp, self.name)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
