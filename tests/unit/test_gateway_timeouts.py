"""A silent or slow client holds a gateway socket for seconds, not forever.

Real loopback sockets against a real gateway: a TCP client that never starts TLS, a
client that sends half a request and stops (slowloris), on each of the three ports; and
an agent's WebSocket, which must outlive those limits.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from choreoctl.kube.client import KubeClient
from choreoctl.runtime.agent_exec import Executor
from tests.unit.gateway_harness import (
    Certs,
    FakeAPI,
    Harness,
    connected_agent,
    gateway_config,
    proxy_url,
)

LIMIT = 0.5  # seconds: the handshake and header limits these tests set
PATIENCE = 10.0  # how long a test waits for the gateway to hang up before failing


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Harness, FakeAPI, Executor]]:
    certs = Certs(tmp_path)
    api = await FakeAPI().start()
    cfg = gateway_config(
        certs,
        handshake_timeout=LIMIT,
        header_timeout=LIMIT,
        heartbeat_interval=0.2,
        heartbeat_timeout=5.0,
    )
    harness = await Harness(certs, cfg).start()
    kube = KubeClient(api.url, token="agent-sa-token")
    yield harness, api, Executor(kube, timeout=2.0)
    await harness.close()
    await kube.aclose()
    await api.close()


async def hung_up(reader: asyncio.StreamReader) -> float:
    """Seconds until the peer closes (EOF or reset) without answering; fails after PATIENCE."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        data = await asyncio.wait_for(reader.read(65536), PATIENCE)
        assert data == b"", f"the gateway answered instead of hanging up: {data[:80]!r}"
    except (ConnectionError, ssl.SSLError):
        pass
    except TimeoutError:
        raise AssertionError(f"the gateway kept the connection open for {PATIENCE} s") from None
    return loop.time() - start


def internal_tls(h: Harness) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(h.certs.gw / "ca.crt"))
    ctx.load_cert_chain(str(h.certs.gw / "ctl.crt"), str(h.certs.gw / "ctl.key"))
    return ctx


async def test_a_client_that_never_starts_tls_is_dropped(
    env: tuple[Harness, FakeAPI, Executor],
) -> None:
    h, _, _ = env
    for port in (h.cfg.port, h.cfg.internal_port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await hung_up(reader) >= LIMIT * 0.8
        writer.close()


async def test_half_a_request_is_dropped_on_every_port(
    env: tuple[Harness, FakeAPI, Executor],
) -> None:
    h, _, _ = env
    partial = b"GET /api/v1/planes HTTP/1.1\r\nHost: gateway\r\nX-Slow: "
    for port, tls in ((h.cfg.health_port, None), (h.cfg.internal_port, internal_tls(h))):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
        )
        writer.write(partial)
        await writer.drain()
        await asyncio.sleep(LIMIT / 2)
        writer.write(b"a")  # a trickle of bytes does not reset the limit
        await writer.drain()
        assert await hung_up(reader) >= LIMIT * 0.2
        writer.close()


async def test_a_complete_request_is_answered_and_an_agent_outlives_the_limits(
    env: tuple[Harness, FakeAPI, Executor],
) -> None:
    h, _, ex = env
    agent = await connected_agent(h, ex)
    await asyncio.sleep(LIMIT * 4)
    assert agent.connected
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", h.cfg.internal_port, ssl=internal_tls(h), server_hostname="localhost"
    )
    path = proxy_url(h, "/api/v1/namespaces/default/pods").split(str(h.cfg.internal_port), 1)[1]
    writer.write(f"GET {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), PATIENCE)
    assert answer.startswith(b"HTTP/1.1 200") and b'"p1"' in answer
    writer.close()
