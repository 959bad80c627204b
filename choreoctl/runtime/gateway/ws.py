"""The agent endpoint ``/ws?planeType=…&planeID=…`` on the gateway's TLS port.

400 for a missing or invalid query, 401 without a client certificate or when no plane
CR's clientCA verifies it, else the WebSocket is accepted and served until it closes:
the gateway pings every heartbeat interval and drops an agent silent for the heartbeat
timeout.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from choreoctl import pki
from choreoctl.errors import TrustError
from choreoctl.runtime import protocol as p
from choreoctl.runtime.config import PLANE_TYPES
from choreoctl.runtime.gateway.keys import GATEWAY
from choreoctl.runtime.gateway.tunnel import AgentConn
from choreoctl.runtime.jsonlog import fields

if TYPE_CHECKING:
    from choreoctl.runtime.gateway.server import Gateway

log = logging.getLogger("choreoctl.gateway.ws")
_PLANE_ID = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$")


def _reject(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def handle(request: web.Request) -> web.StreamResponse:
    """Authenticate, authorize and serve one agent connection."""
    gw: Gateway = request.app[GATEWAY]
    raw_type = request.query.get("planeType", "")
    plane_id = request.query.get("planeID", "")
    plane_type = PLANE_TYPES.get(raw_type)
    if plane_type is None or not _PLANE_ID.match(plane_id):
        gw.auth_failures.inc(reason="bad_query")
        return _reject(
            400, "planeType (dataplane|buildplane|observabilityplane) and planeID are required"
        )
    if gw.draining:
        return _reject(503, "gateway is shutting down")
    ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
    if not der:
        gw.auth_failures.inc(reason="no_certificate")
        return _reject(401, "a client certificate is required")
    try:
        cert = pki.load_der(der)
    except TrustError:
        gw.auth_failures.inc(reason="bad_certificate")
        return _reject(401, "the client certificate cannot be parsed")
    granted, reasons = await gw.registry.authorize(plane_type, plane_id, cert)
    if not granted:
        gw.auth_failures.inc(reason="not_authorized")
        log.warning(
            "agent refused",
            extra=fields(
                planeType=plane_type,
                planeID=plane_id,
                reasons=reasons or ["no plane CR with this planeID"],
            ),
        )
        return _reject(
            401,
            f"client certificate not authorized for any {plane_type} CR with planeID {plane_id}",
        )
    ws = web.WebSocketResponse(
        autoping=False, max_msg_size=p.MAX_FRAME, compress=False, timeout=10.0
    )
    extension = request.headers.get(p.EXTENSION_HEADER) == p.EXTENSION_VERSION
    if extension:
        ws.headers[p.EXTENSION_HEADER] = p.EXTENSION_VERSION
    binary = extension and request.headers.get(p.BINARY_HEADER) == "1"
    if binary:
        ws.headers[p.BINARY_HEADER] = "1"
    await ws.prepare(request)
    conn = AgentConn(
        ws,
        plane_type,
        plane_id,
        cert.not_valid_after_utc,
        pki.fingerprint(cert),
        extension=extension,
        binary=binary,
        max_inflight=gw.config.max_inflight_per_agent,
        transport=request.transport,
    )
    gw.registry.add(conn, cert, granted)
    gw.connects.inc(plane_type=plane_type)
    log.info(
        "agent connected",
        extra=fields(
            agent=conn.id,
            planeType=plane_type,
            planeID=plane_id,
            crs=sorted("/".join(k) for k in granted),
            remote=request.remote,
            extension=extension,
        ),
    )
    pinger = asyncio.create_task(_heartbeat(gw, conn))
    try:
        async for msg in ws:
            conn.seen()
            if msg.type is WSMsgType.TEXT:
                gw.bytes.inc(len(msg.data), direction="from_agent")
                conn.dispatch(msg.data)
            elif msg.type is WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type is WSMsgType.BINARY:
                gw.bytes.inc(len(msg.data), direction="from_agent")
                if conn.binary:
                    conn.dispatch_binary(msg.data)
                else:
                    log.warning("dropped binary frame", extra=fields(agent=conn.id))
            elif msg.type is WSMsgType.ERROR:
                log.warning(
                    "agent connection error", extra=fields(agent=conn.id, error=str(ws.exception()))
                )
                break
    finally:
        pinger.cancel()
        conn.fail_all()
        gw.registry.remove(conn)
        log.info(
            "agent disconnected",
            extra=fields(agent=conn.id, planeType=plane_type, planeID=plane_id, code=ws.close_code),
        )
    return ws


async def _heartbeat(gw: Gateway, conn: AgentConn) -> None:
    """Ping every interval; close the connection when the agent has been silent too long."""
    interval = gw.config.heartbeat_interval
    timeout = gw.config.heartbeat_timeout
    while not conn.closed:
        await asyncio.sleep(min(interval, max(0.05, timeout / 3)))
        if time.monotonic() - conn.last_seen > timeout:
            log.warning("agent silent, dropping it", extra=fields(agent=conn.id, silentFor=timeout))
            await conn.close(1001, "heartbeat timeout")
            return
        try:
            async with asyncio.timeout(conn.send_timeout):
                await conn.ws.ping()
        except (TimeoutError, ConnectionError, RuntimeError):
            await conn.close(1011, "ping failed")
            return
