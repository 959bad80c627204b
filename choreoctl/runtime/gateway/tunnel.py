"""One connected agent as the gateway sees it: send requests, match answers, carry streams.

Every wait is bounded: a send that cannot finish within ``send_timeout`` closes the
connection (a stuck agent must not block others), a request waits at most its timeout,
a stream holds at most its window of unread bytes (the agent waits for credit).

The gateway reads each agent connection through a small TLS buffer (idle agents are
cheap, see server.py); while a connection relays a large read its buffer is raised to
:data:`BULK_READ_BUFFER` (fewer, larger socket reads: measured ~25 % less gateway CPU
per MiB) and lowered again when its last stream ends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import WSMsgType

from choreoctl.runtime import protocol as p
from choreoctl.runtime.jsonlog import fields

if TYPE_CHECKING:
    from aiohttp import web

    from choreoctl.runtime.gateway.auth import CRKey

log = logging.getLogger("choreoctl.gateway.tunnel")
_ids = itertools.count(1)
BULK_READ_BUFFER = 256 * 1024  # asyncio's own default for a TLS connection


class _ReadBuffer:
    """Resize the TLS read buffer of one connection (asyncio's ``SSLProtocol``).

    There is no public knob per connection; the attributes are those of the
    ``sslproto`` rewrite in Python 3.11+. Where they are missing this does nothing
    (only speed depends on it).
    """

    def __init__(self, transport: object) -> None:
        proto = getattr(transport, "_ssl_protocol", None)
        ok = proto is not None and all(
            hasattr(proto, a) for a in ("max_size", "_ssl_buffer", "_ssl_buffer_view")
        )
        self._proto = proto if ok else None
        self.bulk = False

    def set(self, bulk: bool) -> None:
        proto = self._proto
        if proto is None or bulk == self.bulk:
            return
        self.bulk = bulk
        if bulk:
            proto.max_size = BULK_READ_BUFFER  # get_buffer() grows the buffer on the next read
        else:
            # between two reads (never inside the protocol's callback): safe to swap
            del proto.max_size  # back to the class attribute (the small buffer)
            proto._ssl_buffer = bytearray(proto.max_size)
            proto._ssl_buffer_view = memoryview(proto._ssl_buffer)


class TunnelClosed(Exception):
    """The agent connection went away while a request was waiting on it."""


@dataclass
class Stream:
    """The gateway end of one stream: the status line, then chunks, then ``None``."""

    request_id: str
    window: int
    status: asyncio.Future[p.Response]
    chunks: asyncio.Queue[bytes | memoryview | None] = field(default_factory=asyncio.Queue)
    received: int = 0  # bytes the agent sent
    granted: int = 0  # bytes the agent was allowed to send
    delivered: int = 0  # bytes written to the client
    closed: bool = False
    bulk: bool = False  # carries a large read (the connection's read buffer is raised)


class AgentConn:
    """A live WebSocket from one agent replica, with what it is authorized for."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        plane_type: str,
        plane_id: str,
        cert_not_after: dt.datetime,
        fingerprint: str,
        *,
        extension: bool,
        binary: bool = False,
        max_inflight: int = 256,
        send_timeout: float = 10.0,
        transport: object = None,
    ) -> None:
        self.id = f"a{next(_ids)}"
        self.ws = ws
        self.plane_type = plane_type
        self.plane_id = plane_id
        self.cert_not_after = cert_not_after
        self.fingerprint = fingerprint
        self.extension = extension
        self.binary = binary  # stream data may come as binary frames
        self.authorized: set[CRKey] = set()
        self.connected_at = dt.datetime.now(dt.UTC)
        self._connected_mono = self.last_seen = time.monotonic()
        self.inflight = 0
        self.max_inflight = max_inflight
        self.send_timeout = send_timeout
        self._pending: dict[str, asyncio.Future[p.Response]] = {}
        self._streams: dict[str, Stream] = {}
        self._lock = asyncio.Lock()
        self._read_buffer = _ReadBuffer(transport)
        self._bulk_streams = 0  # streams that received a large chunk
        self.closed = False

    def seen(self) -> None:
        """Note a frame from the agent (every frame: only a monotonic clock read)."""
        self.last_seen = time.monotonic()

    @property
    def last_seen_wall(self) -> dt.datetime:
        """When the last frame came, as UTC wall time (for the status documents)."""
        return self.connected_at + dt.timedelta(seconds=self.last_seen - self._connected_mono)

    async def send(self, msg: p.Message) -> None:
        """Send one message; a send stuck for ``send_timeout`` closes the connection."""
        if self.closed:
            raise TunnelClosed(self.id)
        try:
            async with asyncio.timeout(self.send_timeout):
                async with self._lock:
                    # already UTF-8: no str round trip for a megabyte of base64
                    await self.ws.send_frame(p.encode_bytes(msg), WSMsgType.TEXT)
        except (TimeoutError, ConnectionError, RuntimeError) as e:
            await self.close(1011, "send failed")
            raise TunnelClosed(self.id) from e

    async def roundtrip(self, req: p.Request, timeout: float) -> p.Response:
        """Send ``req`` and wait up to ``timeout`` for the matching response."""
        fut: asyncio.Future[p.Response] = asyncio.get_running_loop().create_future()
        self._pending[req.request_id] = fut
        self.inflight += 1
        try:
            await self.send(req)
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self.inflight -= 1
            self._pending.pop(req.request_id, None)

    async def open_stream(self, req: p.Request, timeout: float) -> Stream:
        """Send a stream open and wait for its status line; the caller must :meth:`end_stream`."""
        loop = asyncio.get_running_loop()
        stream = Stream(req.request_id, req.window, loop.create_future())
        stream.granted = req.window
        self._streams[req.request_id] = stream
        self.inflight += 1
        try:
            await self.send(req)
            async with asyncio.timeout(timeout):
                await stream.status
        except BaseException:
            await self.end_stream(stream, cancel=True)
            raise
        return stream

    async def grant(self, stream: Stream, credit: int) -> None:
        """Let the agent send ``credit`` more bytes on ``stream``."""
        stream.granted += credit
        if not stream.closed:
            await self.send(p.Credit(stream.request_id, credit))

    async def end_stream(self, stream: Stream, cancel: bool) -> None:
        """Forget ``stream``; with ``cancel`` tell the agent to stop it."""
        if self._streams.pop(stream.request_id, None) is not None:
            self.inflight -= 1
            if stream.bulk:
                self._bulk_streams -= 1
                if not self._bulk_streams:
                    self._read_buffer.set(False)
        if cancel and not stream.closed and not self.closed:
            stream.closed = True
            try:
                await self.send(p.Chunk(stream.request_id, is_close=True))
            except TunnelClosed:
                pass

    def dispatch(self, text: str) -> None:
        """Route one frame from the agent; malformed or unknown frames are dropped."""
        try:
            msg = p.decode(text)
        except p.ProtocolError as e:
            log.warning("dropped malformed frame", extra=fields(agent=self.id, error=str(e)))
            return
        if isinstance(msg, p.Response):
            fut = self._pending.get(msg.request_id)
            stream = self._streams.get(msg.request_id)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            elif stream is not None and not stream.status.done():
                stream.status.set_result(msg)
        elif isinstance(msg, p.Chunk):
            self._chunk(msg)
        # Requests and credits never come from an agent: ignore them.

    def dispatch_binary(self, frame: bytes) -> None:
        """Route one binary data frame (choreoctl extension); malformed ones are dropped."""
        try:
            msg = p.decode_binary(frame)
        except p.ProtocolError as e:
            log.warning("dropped malformed frame", extra=fields(agent=self.id, error=str(e)))
            return
        self._chunk(msg)

    def _chunk(self, msg: p.Chunk) -> None:
        stream = self._streams.get(msg.request_id)
        if stream is None or stream.closed:
            return  # late chunk of a finished or cancelled stream
        if not stream.status.done():
            stream.status.set_result(p.Response(msg.request_id, 200))
        stream.received += len(msg.data)
        if not stream.bulk and len(msg.data) >= p.CHUNK_SIZE // 2:
            stream.bulk = True  # a large read, not a watch's trickle of events
            self._bulk_streams += 1
            self._read_buffer.set(True)
        if stream.window and stream.received > stream.granted + p.CHUNK_SIZE:
            log.warning("agent overran its stream window", extra=fields(agent=self.id))
            stream.closed = True
            stream.chunks.put_nowait(None)
            asyncio.ensure_future(self.send(p.Chunk(msg.request_id, is_close=True)))
            return
        if msg.data:
            stream.chunks.put_nowait(msg.data)
        if msg.is_close:
            stream.closed = True
            stream.chunks.put_nowait(None)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket and fail everything that waits on it."""
        if not self.closed:
            self.closed = True
            try:
                async with asyncio.timeout(2.0):
                    await self.ws.close(code=code, message=reason.encode())
            except (TimeoutError, ConnectionError, RuntimeError):
                pass
        self.fail_all()

    def fail_all(self) -> None:
        """Fail the pending requests and end the streams (the connection is gone)."""
        self.closed = True
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(TunnelClosed(self.id))
        for stream in self._streams.values():
            if not stream.status.done():
                stream.status.set_exception(TunnelClosed(self.id))
            if not stream.closed:
                stream.closed = True
                stream.chunks.put_nowait(None)
