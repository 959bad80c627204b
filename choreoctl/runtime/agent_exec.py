"""What the agent does with a request: run it against its own API server, as itself.

Only ``target: "k8s"`` exists (anything else → 404). The caller's ``Authorization`` is
dropped; the agent's ServiceAccount token (inside :class:`KubeClient`) is what the API
server sees, so RBAC of the plane is the agent's RBAC. Bodies are read with a bound;
streams send chunks only while the gateway has granted credit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from choreoctl.errors import ClusterError
from choreoctl.runtime import protocol as p

if TYPE_CHECKING:
    from choreoctl.kube.client import KubeClient
    from choreoctl.kube.raw import RawResponse

Send = Callable[[p.Message], Awaitable[None]]

_DROP = frozenset(
    {
        "authorization",
        "host",
        "content-length",
        "connection",
        "transfer-encoding",
        "accept-encoding",
        "keep-alive",
        "upgrade",
        "te",
        "proxy-authorization",
    }
)
_DROP_RESPONSE = frozenset({"connection", "transfer-encoding", "keep-alive", "content-length"})


class Credit:
    """Bytes the agent may still send on one stream; unlimited when the window is 0."""

    def __init__(self, window: int) -> None:
        self.unlimited = window <= 0
        self.available = window
        self._more = asyncio.Event()

    def grant(self, amount: int) -> None:
        self.available += amount
        self._more.set()

    async def take(self, amount: int) -> None:
        """Wait until some credit is left, then spend ``amount`` (may go below zero once)."""
        if self.unlimited:
            return
        while self.available <= 0:
            self._more.clear()
            await self._more.wait()
        self.available -= amount


def _error(req: p.Request, status: int, message: str, code: str = "") -> p.Response:
    return p.Response(req.request_id, status, error=p.ErrorInfo(message, code=code))


def _headers(req: p.Request) -> dict[str, str]:
    out = {k: ", ".join(v) for k, v in req.headers.items() if k.lower() not in _DROP}
    out["Accept-Encoding"] = "identity"
    return out


def _response_headers(resp: RawResponse) -> p.Headers:
    out: p.Headers = {}
    for name, value in resp.headers:
        if name.lower() not in _DROP_RESPONSE:
            out.setdefault(name, []).append(value)
    return out


class Executor:
    """Runs tunnel requests against one API server."""

    def __init__(self, kube: KubeClient, timeout: float = 30.0) -> None:
        self.kube = kube
        self.timeout = timeout

    async def _open(self, req: p.Request, timeout: float | None) -> RawResponse:
        # the client's raw transport: ~5x less CPU per request than its httpx path
        url = f"{req.path}?{req.query}" if req.query else req.path
        return await self.kube.open_raw(
            req.method, url, headers=_headers(req), content=req.body or None, timeout=timeout
        )

    async def run(self, req: p.Request) -> p.Response:
        """One request → one response (body bounded by MAX_RESPONSE_BODY)."""
        if req.target != "k8s":
            return _error(req, 404, f"unknown target {req.target!r}", "UNKNOWN_TARGET")
        try:
            async with asyncio.timeout(self.timeout):
                resp = await self._open(req, self.timeout)
                try:
                    body = bytearray()
                    async for chunk in resp.iter_raw():
                        body += chunk
                        if len(body) > p.MAX_RESPONSE_BODY:
                            return _error(
                                req,
                                502,
                                f"response over {p.MAX_RESPONSE_BODY} bytes; page the list "
                                "(limit/continue) or watch instead",
                                "RESPONSE_TOO_LARGE",
                            )
                finally:
                    await resp.close()
        except TimeoutError:
            return _error(
                req, 504, f"the API server did not answer within {self.timeout:g}s", "TIMEOUT"
            )
        except ClusterError as e:
            return _error(req, 502, e.message, "UPSTREAM_UNREACHABLE")
        return p.Response(req.request_id, resp.status_code, _response_headers(resp), bytes(body))

    @staticmethod
    async def _relay(req: p.Request, data: bytes, send: Send, credit: Credit) -> None:
        for i in range(0, len(data), p.CHUNK_SIZE):
            part = data if len(data) <= p.CHUNK_SIZE else data[i : i + p.CHUNK_SIZE]
            await credit.take(len(part))
            await send(p.Chunk(req.request_id, part))

    async def stream(self, req: p.Request, send: Send, credit: Credit) -> None:
        """Answer a stream open: a small or failed response in one message; a watch, a
        follow or a large body as a status line (marked with CHUNKED_HEADER), chunks as
        credit allows, and a closing chunk."""
        if req.target != "k8s":
            await send(_error(req, 404, f"unknown target {req.target!r}", "UNKNOWN_TARGET"))
            return
        if req.is_upgrade:
            await send(
                _error(
                    req, 501, "protocol upgrades (exec, port-forward) are not supported", "UPGRADE"
                )
            )
            return
        try:
            async with asyncio.timeout(self.timeout):
                resp = await self._open(req, None)
        except TimeoutError:
            await send(_error(req, 504, "the API server did not answer", "TIMEOUT"))
            return
        except ClusterError as e:
            await send(_error(req, 502, e.message, "UPSTREAM_UNREACHABLE"))
            return
        try:
            watch = p.is_watch(req.method, req.path, req.query)
            size = resp.content_length
            if not watch and size is not None and size <= p.INLINE_BODY:
                # a small object of declared length (most reads): one read, one message
                body = await resp.read()
                await send(
                    p.Response(req.request_id, resp.status_code, _response_headers(resp), body)
                )
                return
            head = bytearray()
            rest = resp.iter_raw()  # as it arrives; a chunk_size would hold data back
            if resp.status_code >= 300 or not watch:
                # errors and ordinary reads: answer in one message when the body is small
                limit = 1024 * 1024 if resp.status_code >= 300 else p.INLINE_BODY
                async for chunk in rest:
                    head += chunk
                    if len(head) > limit:
                        break
                else:
                    await send(
                        p.Response(
                            req.request_id, resp.status_code, _response_headers(resp), bytes(head)
                        )
                    )
                    return
                if resp.status_code >= 300:
                    await send(
                        p.Response(
                            req.request_id, resp.status_code, _response_headers(resp), bytes(head)
                        )
                    )
                    return
            headers = _response_headers(resp)
            headers[p.CHUNKED_HEADER] = ["1"]
            await send(p.Response(req.request_id, resp.status_code, headers))
            # joined once per chunk: a bytearray grown and copied out costs two more copies
            parts, size = [bytes(head)], len(head)
            async for chunk in rest:
                parts.append(chunk)
                size += len(chunk)
                if watch or size >= p.CHUNK_SIZE:  # watches: as events arrive
                    await self._relay(req, b"".join(parts), send, credit)
                    parts, size = [], 0
            await self._relay(req, b"".join(parts), send, credit)
        except ClusterError:
            pass  # the upstream ended the stream: close it on the gateway side too
        finally:
            await resp.close()
        await send(p.Chunk(req.request_id, is_close=True))
