"""The gateway's proxy through a connected agent: round trips, refusals, load sharing, watches."""

from __future__ import annotations

import asyncio
import json

from choreoctl.runtime import protocol as p
from choreoctl.runtime.agent_exec import Executor
from tests.unit.gateway_harness import (
    FakeAPI,
    Harness,
    agent_config,
    connected_agent,
    proxy_url,
    wait_for,
)


async def test_proxy_round_trip_uses_the_agents_identity(
    env: tuple[Harness, FakeAPI, Executor],
) -> None:
    h, api, ex = env
    await connected_agent(h, ex)
    async with h.certs.internal_client() as c:
        r = await c.get(
            proxy_url(h, "/api/v1/namespaces/default/pods"),
            headers={"Authorization": "Bearer caller"},
        )
        assert r.status_code == 200 and r.json()["items"][0]["metadata"]["name"] == "p1"
        assert api.seen_auth == ["Bearer agent-sa-token"]
        r = await c.post(proxy_url(h, "/echo?dryRun=All&x=1"), content=b"\x00body\xff")
        assert r.content == b"\x00body\xff" and r.headers["X-Query"] == "dryRun=All&x=1"
        status = (
            await c.get(
                f"https://127.0.0.1:{h.cfg.internal_port}/api/v1/planes/dataplane/dp1/status"
            )
        ).json()
        assert status["connected"] is True and status["connectedAgents"] == 1 and status["lastSeen"]
        big = await c.get(proxy_url(h, f"/big/{5 * 1024 * 1024}"))
        assert big.status_code == 200 and len(big.content) == 5 * 1024 * 1024


async def test_proxy_refusals(env: tuple[Harness, FakeAPI, Executor]) -> None:
    h, _, ex = env
    async with h.certs.internal_client() as c:
        assert (await c.get(proxy_url(h, "/api/v1/pods"))).status_code == 502  # nobody connected
        await connected_agent(h, ex)
        other_ca, _ = h.certs.agent("unused")
        h.add_cr("dp1-other", other_ca, plane_id="dp1")
        assert (await c.get(proxy_url(h, "/api/v1/pods", cr="dp1-other"))).status_code == 403
        assert (
            await c.get(proxy_url(h, "/api/v1/namespaces/kube-system/secrets/x"))
        ).status_code == 403
        assert (await c.get(proxy_url(h, "/api/v1/secrets"))).status_code == 403
        assert (await c.get(proxy_url(h, "/api/v1/namespaces/%2e%2e/pods"))).status_code == 400
        assert (await c.get(proxy_url(h, "/api/v1/namespaces/a%00b/pods"))).status_code == 400
        assert (await c.request("PROPFIND", proxy_url(h, "/api/v1/pods"))).status_code == 405
        r = await c.post(proxy_url(h, "/echo"), content=b"x" * (p.MAX_REQUEST_BODY + 1))
        assert r.status_code == 413
        r = await c.get(proxy_url(h, "/slow"))  # the agent's API times out after 2 s
        assert r.status_code == 504


async def test_agent_replicas_share_the_load(env: tuple[Harness, FakeAPI, Executor]) -> None:
    h, _, ex = env
    ca, d = h.certs.agent("dp1")
    h.add_cr("dp1", ca)
    a1 = h.start_agent(agent_config(h.cfg, d, "dp1"), ex)
    a2 = h.start_agent(agent_config(h.cfg, d, "dp1"), ex)
    await wait_for(lambda: a1.connected and a2.connected)
    async with h.certs.internal_client() as c:
        for _ in range(10):
            assert (await c.get(proxy_url(h, "/api/v1/namespaces/default/pods"))).status_code == 200
    assert a1.handled.get(code="stream") >= 3 and a2.handled.get(code="stream") >= 3


async def test_watch_streams_with_bounded_buffer_and_cancellation(
    env: tuple[Harness, FakeAPI, Executor],
) -> None:
    h, api, ex = env
    await connected_agent(h, ex)
    async with h.certs.internal_client() as c:
        async with c.stream("GET", proxy_url(h, "/api/v1/pods?watch=true&events=50")) as r:
            lines = [json.loads(x) async for x in r.aiter_lines() if x]
        assert [e["object"]["n"] for e in lines] == list(range(50))
        api.watch_closed.clear()
        async with c.stream("GET", proxy_url(h, "/api/v1/pods?watch=1")) as r:
            it = r.aiter_raw()
            await it.__anext__()
            # a slow reader: once the socket buffers are full the flow stops, and the
            # gateway itself never holds more than one window
            conn = h.gateway.registry.all()[0]
            stream = next(iter(conn._streams.values()))
            before = -1
            for _ in range(60):
                assert stream.received <= stream.granted + p.CHUNK_SIZE
                assert stream.received - stream.delivered <= h.cfg.stream_window + p.CHUNK_SIZE
                if stream.received == before:
                    break
                before = stream.received
                await asyncio.sleep(0.5)
            else:
                raise AssertionError("the stream never stalled for a reader that does not read")
        # the client went away: the agent's upstream watch is closed too
        await asyncio.wait_for(api.watch_closed.wait(), 5)


async def test_unknown_target_is_404(env: tuple[Harness, FakeAPI, Executor]) -> None:
    _, _, ex = env
    resp = await ex.run(p.Request("r", "GET", "/", target="helm"))
    assert resp.status_code == 404 and resp.error is not None
