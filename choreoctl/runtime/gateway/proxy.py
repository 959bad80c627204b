"""The gateway's internal API (port 8444, mTLS): proxy into a plane, plane status, notify.

``/api/proxy/{planeType}/{planeID}/{crNamespace|_cluster}/{crName}/k8s/{path}`` forwards
one Kubernetes request through an authorized agent of that CR. The rules are
OpenChoreo's: only GET/POST/PUT/PATCH/DELETE/HEAD/OPTIONS, bodies over 10 MiB → 413,
``..`` or NUL in the path → 400, Secrets in kube-system are never proxied (403), 403
when agents are connected but none is authorized for the CR, 502 when none is
connected or the agent does not answer in 30 s. Unlike the reference, ``watch=true``
and ``follow=true`` requests are streamed (with choreoctl agents; 501 with others).
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web

from choreoctl.errors import ChoreoError
from choreoctl.runtime import protocol as p
from choreoctl.runtime.config import PLANE_TYPES
from choreoctl.runtime.gateway.keys import GATEWAY
from choreoctl.runtime.gateway.tunnel import TunnelClosed

if TYPE_CHECKING:
    from choreoctl.runtime.gateway.server import Gateway
    from choreoctl.runtime.gateway.tunnel import AgentConn

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_SECRETS = re.compile(r"^/api/v1/(?:namespaces/([^/]+)/)?secrets(?:/|$)")
# Hop-by-hop and framing headers are the proxy's own business on each leg.
_DROP_REQUEST = frozenset(
    {
        "host",
        "connection",
        "content-length",
        "transfer-encoding",
        "accept-encoding",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "authorization",
    }
)
_DROP_RESPONSE = frozenset(
    {"connection", "content-length", "transfer-encoding", "content-encoding", "keep-alive"}
)


# Request IDs: 32 hex digits like a UUID's, unique per gateway process (and so per agent
# connection, which is all the protocol needs) without a getrandom() call per request.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def _request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def check_path(k8s_path: str) -> tuple[int, str] | None:
    """The status and message that refuse ``k8s_path``, or None when it may be proxied."""
    decoded = unquote(k8s_path)
    if (
        "\x00" in decoded
        or ".." in decoded.split("/")
        or "/../" in decoded
        or decoded.endswith("/..")
    ):
        return 400, "path must not contain '..' or NUL"
    m = _SECRETS.match(decoded)
    if m and (m.group(1) is None or m.group(1) == "kube-system"):
        return 403, "Secrets in kube-system (and cluster-wide Secret lists) are never proxied"
    return None


async def handle_proxy(request: web.Request) -> web.StreamResponse:
    """Forward one request to an agent of the CR named in the path."""
    gw: Gateway = request.app[GATEWAY]
    started = time.monotonic()
    resp = await _proxy(gw, request)
    gw.requests.inc(code=str(resp.status))
    gw.latency.observe(time.monotonic() - started)
    return resp


async def _proxy(gw: Gateway, request: web.Request) -> web.StreamResponse:
    mi = request.match_info
    plane_type = PLANE_TYPES.get(mi["planeType"])
    if plane_type is None:
        return _error(400, f"unknown plane type {mi['planeType']!r}")
    if request.method not in METHODS:
        return _error(405, f"method {request.method} is not proxied")
    raw = request.raw_path.split("?", 1)[0]
    marker = f"/{mi['crName']}/k8s/"
    k8s_path = "/" + raw.split(marker, 1)[1] if marker in raw else "/" + mi["path"]
    refused = check_path(k8s_path)
    if refused:
        return _error(*refused)
    if gw.draining:
        return _error(503, "gateway is shutting down")
    if (request.content_length or 0) > p.MAX_REQUEST_BODY:
        return _error(413, f"request body over {p.MAX_REQUEST_BODY} bytes")
    body = await request.content.read(p.MAX_REQUEST_BODY + 1)
    if len(body) > p.MAX_REQUEST_BODY:
        return _error(413, f"request body over {p.MAX_REQUEST_BODY} bytes")
    cr = ("" if mi["crNamespace"] == "_cluster" else mi["crNamespace"], mi["crName"])
    conn, connected = gw.registry.pick(plane_type, mi["planeID"], cr)
    if conn is None:
        if connected and not gw.registry.authorized_anywhere(plane_type, mi["planeID"], cr):
            return _error(
                403,
                f"no connected agent is authorized for {plane_type} CR "
                f"{cr[0] or '_cluster'}/{cr[1]}",
            )
        if connected:
            return _error(503, "every authorized agent is at its concurrency limit")
        return _error(502, f"no agent connected for {plane_type}/{mi['planeID']}")
    if gw.pending >= gw.config.max_pending:
        return _error(503, "too many requests in flight at the gateway")
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        if name.lower() not in _DROP_REQUEST:
            headers.setdefault(name, []).append(value)
    req = p.Request(
        request_id=_request_id(),
        gateway_request_id=request.headers.get("X-Request-ID", ""),
        method=request.method,
        path=k8s_path,
        query=request.query_string,
        headers=headers,
        body=body,
    )
    gw.pending += 1
    gw.bytes.inc(len(body), direction="to_agent")
    try:
        watch = p.is_watch(request.method, k8s_path, request.query_string)
        if watch and not conn.extension:
            return _error(501, "this agent does not support streaming (watch/follow)")
        if conn.extension and request.method == "GET":
            # choreoctl agents answer reads as streams: large bodies come in flow-controlled
            # chunks instead of one huge frame, and are relayed as they arrive
            return await _stream(gw, conn, req, request)
        try:
            answer = await conn.roundtrip(req, gw.config.request_timeout)
        except TimeoutError:
            return _error(
                502, f"agent {conn.id} did not answer within {gw.config.request_timeout:g}s"
            )
        except TunnelClosed:
            return _error(502, f"agent {conn.id} disconnected during the request")
        return _response(gw, answer)
    finally:
        gw.pending -= 1


def _response(gw: Gateway, answer: p.Response) -> web.Response:
    if answer.error is not None and not answer.body:
        return web.json_response(
            {
                "error": answer.error.message,
                "code": answer.error.code,
                "details": answer.error.details,
            },
            status=answer.status_code,
        )
    out = web.Response(status=answer.status_code, body=answer.body)
    _copy_headers(answer, out)
    gw.bytes.inc(len(answer.body), direction="to_client")
    return out


def _copy_headers(answer: p.Response, out: web.StreamResponse) -> None:
    for name, values in answer.headers.items():
        if name.lower() not in _DROP_RESPONSE:
            for v in values:
                out.headers.add(name, v)


async def _stream(
    gw: Gateway, conn: AgentConn, req: p.Request, request: web.Request
) -> web.StreamResponse:
    """Relay a stream, granting the agent credit only as the client consumes."""
    req.stream, req.window = True, gw.config.stream_window
    try:
        stream = await conn.open_stream(req, gw.config.request_timeout)
    except TimeoutError:
        return _error(
            502, f"agent {conn.id} did not open the stream within {gw.config.request_timeout:g}s"
        )
    except TunnelClosed:
        return _error(502, f"agent {conn.id} disconnected")
    status = stream.status.result()
    if status.headers.pop(p.CHUNKED_HEADER, None) is None:
        await conn.end_stream(stream, cancel=False)  # complete in one message
        return _response(gw, status)
    out = web.StreamResponse(status=status.status_code)
    _copy_headers(status, out)
    cancel = True
    try:
        await out.prepare(request)
        unacked = 0
        while True:
            data = await stream.chunks.get()
            if data is None:
                cancel = False
                break
            await out.write(data)  # waits while the client reads slowly
            stream.delivered += len(data)
            gw.bytes.inc(len(data), direction="to_client")
            unacked += len(data)
            if unacked >= stream.window // 4:
                await conn.grant(stream, unacked)
                unacked = 0
        await out.write_eof()
    except (ConnectionError, TunnelClosed):
        pass  # the client went away or the agent did: end the stream on the other side
    finally:
        await conn.end_stream(stream, cancel=cancel)
    return out


async def handle_status(request: web.Request) -> web.Response:
    """``GET /api/v1/planes/{type}/{id}/status``: OpenChoreo's plane status document."""
    gw: Gateway = request.app[GATEWAY]
    plane_type = PLANE_TYPES.get(request.match_info["planeType"])
    if plane_type is None:
        return _error(400, "unknown plane type")
    return web.json_response(gw.registry.plane_status(plane_type, request.match_info["planeID"]))


async def handle_notify(request: web.Request) -> web.Response:
    """``POST /api/v1/planes/notify``: a plane CR changed; re-read it and re-validate."""
    gw: Gateway = request.app[GATEWAY]
    try:
        data = await request.json()
        plane_type = PLANE_TYPES[str(data["planeType"])]
        plane_id = str(data["planeID"])
    except (ValueError, KeyError, TypeError):
        return _error(400, "body must be {planeType, planeID, event, namespace, name}")
    try:
        await gw.registry.source.refresh(plane_type)
    except ChoreoError as e:
        return _error(502, f"cannot re-read {plane_type} CRs: {e.message}")
    await gw.registry.revalidate(plane_type, plane_id)
    return web.json_response({"status": "ok", **gw.registry.plane_status(plane_type, plane_id)})


async def handle_planes(request: web.Request) -> web.Response:
    """``GET /api/v1/planes?since=N&wait=S`` (choreoctl): every plane CR's connection state,
    answered when the state version differs from ``since`` or after ``wait`` seconds."""
    gw: Gateway = request.app[GATEWAY]
    try:
        since = int(request.query.get("since", "-1"))
        wait = min(float(request.query.get("wait", "0")), 60.0)
    except ValueError:
        return _error(400, "since and wait must be numbers")
    if wait > 0:
        await gw.registry.wait_change(since, wait)
    return web.json_response({"version": gw.registry.version, "planes": gw.registry.cr_status()})
