"""Hostile frames against a live gateway and a live agent: nothing crashes, nothing stalls.

Each example sends hypothesis-generated frames (random text, protocol-shaped JSON with
wrong types, answers to requests never made, chunks of streams that do not exist) in both
directions over real TLS WebSockets, then checks that a real request still goes through.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from choreoctl.kube.client import KubeClient
from choreoctl.runtime import protocol as p
from choreoctl.runtime.agent_exec import Executor
from tests.unit.gateway_harness import (
    Certs,
    FakeAPI,
    Harness,
    agent_config,
    gateway_config,
    proxy_url,
    wait_for,
)

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=10,
)
_keys = st.sampled_from(
    [
        "requestID",
        "statusCode",
        "data",
        "method",
        "path",
        "headers",
        "body",
        "isClose",
        "isUpgrade",
        "type",
        "credit",
        "error",
        "target",
        "window",
        "query",
    ]
)
_frames = st.one_of(
    st.text(max_size=200),
    st.dictionaries(_keys, _values, max_size=8).map(json.dumps),
    st.builds(
        lambda rid, code: json.dumps({"requestID": rid, "statusCode": code}),
        st.text(min_size=1, max_size=20),
        st.integers(100, 599),
    ),
    st.builds(
        lambda rid, close: json.dumps({"requestID": rid, "data": "", "isClose": close}),
        st.text(min_size=1, max_size=20),
        st.booleans(),
    ),
    st.builds(
        lambda rid, n: json.dumps({"requestID": rid, "type": "credit", "credit": n}),
        st.text(min_size=1, max_size=20),
        st.integers(-5, 1 << 41),
    ),
    st.builds(
        lambda rid: json.dumps(
            {
                "requestID": rid,
                "target": "k8s",
                "method": "GET",
                "path": "/api/v1/namespaces/default/pods",
            }
        ),
        st.text(min_size=1, max_size=20),
    ),
)


async def _scenario(root: Path, to_gateway: list[str], to_agent: list[str]) -> None:
    certs = Certs(root)
    api = await FakeAPI().start()
    h = await Harness(certs, gateway_config(certs)).start()
    kube = KubeClient(api.url, token="t")
    try:
        ca, d = certs.agent("dp1")
        h.add_cr("dp1", ca)
        agent = h.start_agent(agent_config(h.cfg, d, "dp1"), Executor(kube, timeout=2))
        await wait_for(lambda: agent.connected and h.gateway.registry.all())
        # hostile frames towards the agent, through the gateway's own connection
        conn = h.gateway.registry.all()[0]
        for frame in to_agent:
            await conn.ws.send_str(frame)
        # and towards the gateway, from a second (authorized) raw connection
        ctx = ssl.create_default_context(cafile=str(certs.gw / "ca.crt"))
        ctx.load_cert_chain(str(d / "tls.crt"), str(d / "tls.key"))
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(
                f"wss://localhost:{h.cfg.port}/ws?planeType=dataplane&planeID=dp1", ssl=ctx
            )
            for frame in to_gateway:
                await ws.send_str(frame)
            await ws.close()
        await wait_for(lambda: len(h.gateway.registry.all()) == 1)
        async with certs.internal_client() as c:
            r = await c.get(proxy_url(h, "/api/v1/namespaces/default/pods"))
            assert r.status_code == 200, r.text
        assert agent.connected
    finally:
        await h.close()
        await kube.aclose()
        await api.close()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_frames, max_size=15), st.lists(_frames, max_size=15))
def test_fuzzed_frames_never_crash_or_stall(
    tmp_path_factory, to_gateway: list[str], to_agent: list[str]
) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(
        asyncio.wait_for(_scenario(tmp_path_factory.mktemp("fuzz"), to_gateway, to_agent), 60)
    )


async def test_oversized_frame_drops_only_that_connection(tmp_path: Path) -> None:
    certs = Certs(tmp_path)
    api = await FakeAPI().start()
    h = await Harness(certs, gateway_config(certs)).start()
    kube = KubeClient(api.url, token="t")
    try:
        ca, d = certs.agent("dp1")
        h.add_cr("dp1", ca)
        agent = h.start_agent(agent_config(h.cfg, d, "dp1"), Executor(kube))
        await wait_for(lambda: agent.connected)
        ctx = ssl.create_default_context(cafile=str(certs.gw / "ca.crt"))
        ctx.load_cert_chain(str(d / "tls.crt"), str(d / "tls.key"))
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(
                f"wss://localhost:{h.cfg.port}/ws?planeType=dataplane&planeID=dp1", ssl=ctx
            )
            await ws.send_str("x" * (p.MAX_FRAME + 1))
            msg = await asyncio.wait_for(ws.receive(), 20)
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert msg.data == 1009  # message too big
        await wait_for(lambda: len(h.gateway.registry.all()) == 1)
        async with certs.internal_client() as c:
            assert (await c.get(proxy_url(h, "/api/v1/namespaces/default/pods"))).status_code == 200
    finally:
        await h.close()
        await kube.aclose()
        await api.close()
