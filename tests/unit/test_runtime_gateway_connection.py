"""An agent's connection to the gateway: back promptly after a graceful restart, silent or
garbage-sending peers dropped without stalling others, HTTP proxy selection for the dial."""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
import pytest

from choreoctl.runtime.agent_exec import Executor
from tests.unit.gateway_harness import FakeAPI, Harness, agent_config, proxy_url, wait_for


async def test_graceful_restart_brings_agents_back_promptly(
    env: tuple[Harness, FakeAPI, Executor],
) -> None:
    h, _, ex = env
    ca, d = h.certs.agent("dp1")
    h.add_cr("dp1", ca)
    agents = [
        h.start_agent(agent_config(h.cfg, d, "dp1", backoff_base=5, backoff_cap=30), ex)
        for _ in range(3)
    ]
    await wait_for(lambda: all(a.connected for a in agents))
    await h.restart_gateway()
    # backoff_base is 5 s: only the 1012 close code explains a reconnect within 3 s
    await wait_for(lambda: len(h.gateway.registry.all()) == 3, timeout=3.0)
    assert all(a.backoff.attempt == 0 for a in agents)


async def test_silent_agent_is_dropped_and_garbage_never_stalls(
    env: tuple[Harness, FakeAPI, Executor],
) -> None:
    h, _, ex = env
    ca, d = h.certs.agent("dp1")
    h.add_cr("dp1", ca)
    ctx = ssl.create_default_context(cafile=str(h.certs.gw / "ca.crt"))
    ctx.load_cert_chain(str(d / "tls.crt"), str(d / "tls.key"))
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(
            f"wss://localhost:{h.cfg.port}/ws?planeType=dataplane&planeID=dp1",
            ssl=ctx,
            autoping=False,
        )
        for junk in [
            "",
            "{",
            "[]",
            '{"requestID":"zz","statusCode":200}',
            '{"requestID":"q","data":"!!"}',
            '{"requestID":"q","data":"","isClose":true}',
            "x" * 100_000,
        ]:
            await ws.send_str(junk)
        await ws.send_bytes(b"\x00\x01")
        agent = h.start_agent(agent_config(h.cfg, d, "dp1"), ex)
        await wait_for(lambda: agent.connected)
        async with h.certs.internal_client() as c:
            for _ in range(4):  # spread over both connections; the junk one never answers
                r = await c.get(proxy_url(h, "/api/v1/namespaces/default/pods"))
                if r.status_code == 200:
                    break
        assert r.status_code == 200
        # the raw client never answers pings: dropped after the 1.5 s heartbeat timeout
        msg = await asyncio.wait_for(ws.receive(), 10)
        while msg.type is aiohttp.WSMsgType.PING:
            msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await ws.close()


def test_proxy_selection_honours_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    from choreoctl.runtime.agent_dial import proxy_for

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.svc.cluster.local,10.0.0.0/8")
    assert proxy_for("wss://gw.example.com:8443/ws") == "http://proxy.corp:3128"
    assert proxy_for("wss://localhost:8443/ws") is None
    assert proxy_for("wss://cluster-gateway.cp.svc.cluster.local:8443/ws") is None
    assert proxy_for("wss://10.1.2.3:8443/ws") is None
    monkeypatch.delenv("HTTPS_PROXY")
    assert proxy_for("wss://gw.example.com:8443/ws") is None
