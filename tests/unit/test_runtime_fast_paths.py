"""The runtime's speed measures keep behaviour: large reads through the adaptive TLS
buffer, zero-copy binary chunks, the agent's watchdog, the allocator tuning."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import datetime as dt
import platform
import ssl
from pathlib import Path

import pytest
from aiohttp import web

from choreoctl.runtime import protocol as p
from choreoctl.runtime.agent import Agent
from choreoctl.runtime.agent_exec import Executor
from choreoctl.runtime.gateway import server, tunnel
from choreoctl.runtime.tuning import tune_allocator
from tests.unit.gateway_harness import (
    Certs,
    FakeAPI,
    Harness,
    agent_config,
    connected_agent,
    env,  # noqa: F401  (fixture)
    free_port,
    proxy_url,
    wait_for,
)


def _ssl_protocol(conn: tunnel.AgentConn) -> asyncio.sslproto.SSLProtocol:
    proto = conn._read_buffer._proto
    assert isinstance(proto, asyncio.sslproto.SSLProtocol)
    return proto


async def test_large_read_raises_the_read_buffer_only_while_it_runs(
    env: tuple[Harness, FakeAPI, Executor],  # noqa: F811
) -> None:
    h, _, ex = env
    await connected_agent(h, ex)
    conn = h.gateway.registry.all()[0]
    proto = _ssl_protocol(conn)
    assert proto.max_size == server.TLS_READ_BUFFER
    size = 12 * 1024 * 1024  # more than the stream window plus the socket buffers
    async with h.certs.internal_client() as c:
        async with c.stream("GET", proxy_url(h, f"/big/{size}")) as r:
            it = r.aiter_raw()
            got = len(await it.__anext__())
            # the client is not reading: the stream stalls with its buffer raised
            await wait_for(lambda: conn._read_buffer.bulk)
            assert proto.max_size == tunnel.BULK_READ_BUFFER
            async for part in it:
                got += len(part)
        assert r.status_code == 200 and got == size
        await wait_for(lambda: not conn._read_buffer.bulk)
        assert proto.max_size == server.TLS_READ_BUFFER
        assert len(proto._ssl_buffer) == server.TLS_READ_BUFFER
        # a small read afterwards leaves it small
        r2 = await c.get(proxy_url(h, "/api/v1/namespaces/default/pods"))
        assert r2.status_code == 200 and not conn._read_buffer.bulk


async def test_watch_events_do_not_raise_the_read_buffer(
    env: tuple[Harness, FakeAPI, Executor],  # noqa: F811
) -> None:
    h, _, ex = env
    await connected_agent(h, ex)
    conn = h.gateway.registry.all()[0]
    async with h.certs.internal_client() as c:
        async with c.stream("GET", proxy_url(h, "/api/v1/pods?watch=true&events=20")) as r:
            lines = [x async for x in r.aiter_lines() if x]
    assert len(lines) == 20
    assert not conn._read_buffer.bulk and _ssl_protocol(conn).max_size == server.TLS_READ_BUFFER


def test_binary_chunk_data_is_a_view_of_the_frame() -> None:
    frame = p.encode_binary(p.Chunk("r1", b"abc" * 1000))
    chunk = p.decode_binary(frame)
    assert isinstance(chunk.data, memoryview) and chunk.data.obj is frame
    assert chunk.data == b"abc" * 1000 and chunk == p.Chunk("r1", b"abc" * 1000)
    assert p.encode_binary(chunk) == frame
    # a view travels through the JSON form too (an OpenChoreo peer)
    assert p.decode(p.encode(chunk)) == p.Chunk("r1", b"abc" * 1000)


@pytest.mark.parametrize(
    ("method", "path", "query", "watch"),
    [
        ("GET", "/api/v1/pods", "", False),
        ("GET", "/api/v1/pods", "labelSelector=app%3Dx&limit=5", False),
        ("GET", "/api/v1/pods", "allowWatchBookmarks=true", False),
        ("GET", "/api/v1/pods", "allowWatchBookmarks=true&watch=1", True),
        ("GET", "/api/v1/pods", "watch=false", False),
        ("GET", "/api/v1/namespaces/a/pods/b/log", "follow=true", True),
        ("GET", "/api/v1/namespaces/a/pods/b", "follow=true", False),
        ("POST", "/api/v1/pods", "watch=true", False),
    ],
)
def test_is_watch(method: str, path: str, query: str, watch: bool) -> None:
    assert p.is_watch(method, path, query) is watch


def test_last_seen_wall_follows_the_monotonic_clock() -> None:
    conn = tunnel.AgentConn(
        None,  # type: ignore[arg-type]
        "dataplane",
        "dp1",
        dt.datetime.now(dt.UTC),
        "fp",
        extension=True,
    )
    conn.last_seen += 5.0
    delta = (conn.last_seen_wall - conn.connected_at).total_seconds()
    assert 4.99 < delta < 5.01


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_allocator_tuning_applies_on_glibc() -> None:
    assert tune_allocator() is True
    assert tune_allocator() is True  # idempotent


async def test_agent_drops_a_silent_gateway_and_redials(tmp_path: Path) -> None:
    """A gateway that accepts the WebSocket and then never sends a frame (nor answers
    pings): the agent's watchdog closes it after the heartbeat timeout and dials again."""
    certs = Certs(tmp_path)
    _, d = certs.agent("dp1")
    accepted = 0

    async def silent(request: web.Request) -> web.StreamResponse:
        nonlocal accepted
        accepted += 1
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        async for _ in ws:
            pass  # swallow pings, answer nothing
        return ws

    app = web.Application()
    app.router.add_get("/ws", silent)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(certs.gw / "tls.crt"), str(certs.gw / "tls.key"))
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
    cfg = server.GatewayConfig(str(certs.gw / "tls.crt"), "", str(certs.gw / "ca.crt"), port=port)
    acfg = agent_config(cfg, d, "dp1", heartbeat_interval=0.2, heartbeat_timeout=0.6)
    agent = Agent(acfg, Executor(None, timeout=1.0))  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await wait_for(lambda: accepted >= 2, timeout=10.0)
        assert agent.connects.get() >= 2
    finally:
        stop.set()
        await asyncio.wait_for(task, 10.0)
        await runner.cleanup()
