"""A small HTTP/1.1 client for the typed verbs: whole-body exchanges on kept-alive
connections to one API server.

Why not aiohttp here: importing it costs every command that talks to a cluster about
80 ms (a third of a whole ``choreoctl preflight``), and the typed verbs need none of
it: one server, small requests, a whole body back, framed by Content-Length or chunked
(RFC 9112). asyncio's streams do that in what follows, for no more CPU per request.
The agent's streaming relay stays on aiohttp (:mod:`choreoctl.kube.raw`): a long-lived
process pays the import once. Names resolve through :mod:`choreoctl.dns`, so a lost
DNS answer cannot hold a command up; failures become
:class:`~choreoctl.errors.ClusterUnreachable`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from choreoctl.connect import close, open_connection
from choreoctl.errors import ClusterError, ClusterUnreachable

Headers = list[tuple[str, str]]

# An idle connection older than this may have been closed by the server (Go's
# net/http closes idle ones after its IdleTimeout); open a new one rather than race it.
IDLE_REUSE_SECONDS = 30.0
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_NO_BODY = frozenset({204, 304})
_HEAD_LIMIT = 1 << 20  # bytes of status line and headers we accept
# Connections to one server at most; more requests at once wait for one to come free
# (uninstall lists every namespaced kind at once: ~100 TLS handshakes otherwise).
MAX_CONNECTIONS = 32


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0


class _Unanswered(Exception):
    """A kept-alive connection closed before any byte of the response arrived."""


class Http1Client:
    """Kept-alive connections to the API server at ``server`` (``https://host:port``)."""

    def __init__(self, server: str, tls: ssl.SSLContext | bool, timeout: float, name: str) -> None:
        url = urlsplit(server)
        self.name = name
        self.server = server
        self._host = url.hostname or ""
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._authority = url.netloc
        self._tls: ssl.SSLContext | None = None
        if url.scheme == "https":
            self._tls = tls if isinstance(tls, ssl.SSLContext) else _unverified()
        self._timeout = timeout
        self._idle: list[_Conn] = []
        self._open = asyncio.Semaphore(MAX_CONNECTIONS)

    async def exchange(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float | None,
    ) -> tuple[int, Headers, bytes]:
        """Send one request (``target``: path and query) and read the whole response.

        ``timeout`` bounds each read (``None``: no bound); connecting is bounded by the
        client's timeout. Returns the status, the headers in wire order and the body as
        sent (not decompressed).
        """
        request = self._encode(method, target, headers, body)
        async with self._open:
            return await self._exchange(method, request, timeout)

    async def _exchange(
        self, method: str, request: bytes, timeout: float | None
    ) -> tuple[int, Headers, bytes]:
        while True:
            conn, reused = self._take()
            if conn is None:
                conn = await self._connect()
            try:
                status, head, payload, keep = await self._roundtrip(conn, request, timeout)
            except _Unanswered as e:
                conn.writer.close()
                if reused and method in _IDEMPOTENT:
                    continue  # the server had closed it while idle: ask on a new one
                raise ClusterUnreachable(
                    f"{self.name}: {self.server} closed the connection without answering",
                    hint="check the API server's health; the request may be retried",
                ) from e
            except BaseException:
                conn.writer.close()
                raise
            if keep:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.writer.close()
            return status, head, payload

    async def aclose(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.writer.close()
        if idle:  # let TLS say goodbye, but never wait long on a server that went away
            await asyncio.wait([asyncio.ensure_future(close(c.writer)) for c in idle], timeout=1.0)

    def _take(self) -> tuple[_Conn | None, bool]:
        """The most recently used idle connection still fresh enough, if any."""
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < IDLE_REUSE_SECONDS and not conn.reader.at_eof():
                return conn, True
            conn.writer.close()
        return None, False

    def _encode(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | None
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._authority}", "User-Agent: choreoctl"]
        for k, v in headers.items():
            if "\r" in v or "\n" in v or "\r" in k or "\n" in k:
                raise ClusterError(
                    f"{self.name}: header {k!r} holds a line break",
                    hint="check the credentials in the kubeconfig (a token spans lines?)",
                )
            lines.append(f"{k}: {v}")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        try:
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError as e:
            raise ClusterError(
                f"{self.name}: {method} {target[:80]}: {e.object[e.start : e.end]!r} cannot "
                "go into an HTTP header or path",
                hint="check the credentials in the kubeconfig and the names used",
            ) from e
        return head + (body or b"")

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await open_connection(
                self._host,
                self._port,
                timeout=self._timeout,
                ssl=self._tls,
                server_hostname=self._host if self._tls else None,
                limit=_HEAD_LIMIT,
            )
        except TimeoutError as e:
            raise ClusterUnreachable.no_answer(self.name, self.server, "ConnectTimeout") from e
        except OSError as e:  # socket.gaierror and ssl.SSLError included
            raise ClusterUnreachable.cannot_reach(self.name, self.server, e) from e
        return _Conn(reader, writer)

    async def _roundtrip(
        self, conn: _Conn, request: bytes, timeout: float | None
    ) -> tuple[int, Headers, bytes, bool]:
        """Write ``request`` and read the response: status, headers, body, keep-alive."""
        loop = asyncio.get_running_loop()
        got_any = False
        try:
            async with asyncio.timeout(None) as deadline:

                def arm() -> None:
                    if timeout is not None:
                        deadline.reschedule(loop.time() + timeout)

                arm()
                conn.writer.write(request)
                await conn.writer.drain()
                while True:  # skip 1xx interim responses (none is asked for)
                    head = await conn.reader.readuntil(b"\r\n\r\n")
                    got_any = True
                    status, version, headers = _parse_head(head)
                    if not 100 <= status < 200:
                        break
                    arm()
                fields = {k.lower(): v for k, v in headers}
                keep = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
                arm()
                if status in _NO_BODY:
                    body = b""
                elif "chunked" in fields.get("transfer-encoding", "").lower():
                    body = await _read_chunked(conn.reader, arm)
                elif "content-length" in fields:
                    body = await conn.reader.readexactly(int(fields["content-length"]))
                else:
                    body, keep = await conn.reader.read(), False  # framed by the close
                return status, headers, body, keep
        except TimeoutError as e:
            raise ClusterUnreachable.no_answer(self.name, self.server, "ReadTimeout") from e
        except asyncio.IncompleteReadError as e:
            if not got_any and not e.partial:
                raise _Unanswered() from e
            raise self._broken_off(e) from e
        except (ConnectionError, ssl.SSLError, asyncio.LimitOverrunError, ValueError) as e:
            if not got_any and isinstance(e, ConnectionError):
                raise _Unanswered() from e
            raise self._broken_off(e) from e

    def _broken_off(self, e: BaseException) -> ClusterUnreachable:
        return ClusterUnreachable.broken_off(self.name, e)


def _parse_head(head: bytes) -> tuple[int, str, Headers]:
    """Status code, HTTP version and headers of a response head (ValueError if garbled)."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x response: {lines[0][:60]!r}")
    status = int(rest[:3])
    headers = []
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"garbled header line {line[:60]!r}")
            headers.append((name.strip(), value.strip()))
    return status, version, headers


async def _read_chunked(reader: asyncio.StreamReader, arm: Callable[[], None]) -> bytes:
    """A chunked body (RFC 9112 §7.1), trailers read and dropped; ``arm`` before each
    read restarts the read timeout."""
    parts: list[bytes] = []
    while True:
        arm()
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailer fields
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("a chunk did not end with CRLF")


def _unverified() -> ssl.SSLContext:
    """TLS without verification, for a kubeconfig with ``insecure-skip-tls-verify``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
