"""Gateway ↔ agent over real loopback TLS sockets, with a small aiohttp server as the agent's API.

The helpers at the top (:class:`Certs`, :func:`free_port`, :class:`Harness`) are reused by
the integration tests, which point the agents at real API servers instead.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web

from choreoctl import pki
from choreoctl.kube.client import KubeClient
from choreoctl.runtime import protocol as p
from choreoctl.runtime.agent import Agent, AgentConfig
from choreoctl.runtime.agent_exec import Executor
from choreoctl.runtime.gateway.auth import PlaneCR, PlaneSource
from choreoctl.runtime.gateway.server import Gateway, GatewayConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Certs:
    """Certificates made the way the charts make them, written under ``root``."""

    root: Path
    gateway_ca: pki.CertKey = field(init=False)

    def __post_init__(self) -> None:
        self.gateway_ca = pki.make_ca("cluster-gateway-ca")
        d = self.root / "gateway"
        d.mkdir(parents=True, exist_ok=True)
        tls = pki.issue_cert(
            self.gateway_ca,
            "cluster-gateway",
            server=True,
            dns_names=["localhost", "cluster-gateway"],
            ip_addresses=["127.0.0.1"],
        )
        tls.write(d / "tls.crt", d / "tls.key")
        (d / "ca.crt").write_bytes(self.gateway_ca.cert_pem)
        ctl = pki.issue_cert(self.gateway_ca, "controller-manager", client=True)
        ctl.write(d / "ctl.crt", d / "ctl.key")

    @property
    def gw(self) -> Path:
        return self.root / "gateway"

    def agent(
        self, name: str, ca: pki.CertKey | None = None, **kw: object
    ) -> tuple[pki.CertKey, Path]:
        """An agent CA (new unless given) and a client certificate from it, in ``root/name``."""
        ca = ca or pki.make_ca(f"{name}-ca")
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        leaf = pki.issue_cert(ca, name, client=True, **kw)  # type: ignore[arg-type]
        leaf.write(d / "tls.crt", d / "tls.key")
        (d / "ca.crt").write_bytes(ca.cert_pem)
        return ca, d

    def internal_client(self) -> httpx.AsyncClient:
        ctx = ssl.create_default_context(cafile=str(self.gw / "ca.crt"))
        ctx.load_cert_chain(str(self.gw / "ctl.crt"), str(self.gw / "ctl.key"))
        return httpx.AsyncClient(verify=ctx, timeout=30)


def gateway_config(certs: Certs, **kw: object) -> GatewayConfig:
    base: dict[str, object] = dict(
        tls_cert=str(certs.gw / "tls.crt"),
        tls_key=str(certs.gw / "tls.key"),
        client_ca=str(certs.gw / "ca.crt"),
        host="127.0.0.1",
        port=free_port(),
        internal_port=free_port(),
        health_port=free_port(),
    )
    base.update(kw)
    return GatewayConfig(**base)  # type: ignore[arg-type]


def agent_config(
    gw: GatewayConfig, agent_dir: Path, plane_id: str, plane_type: str = "dataplane", **kw: object
) -> AgentConfig:
    base: dict[str, object] = dict(
        server_url=f"wss://localhost:{gw.port}/ws",
        plane_type=plane_type,
        plane_id=plane_id,
        client_cert=str(agent_dir / "tls.crt"),
        client_key=str(agent_dir / "tls.key"),
        server_ca=str(Path(gw.client_ca)),
        health_port=0,
        host="127.0.0.1",
        backoff_base=0.05,
        backoff_cap=0.5,
    )
    base.update(kw)
    return AgentConfig(**base)  # type: ignore[arg-type]


async def wait_for(cond: object, timeout: float = 10.0) -> None:
    """Poll ``cond()`` every 20 ms until true; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class Harness:
    """A gateway plus agents in this event loop; stopped by :meth:`close`."""

    def __init__(
        self, certs: Certs, gw_cfg: GatewayConfig, source: PlaneSource | None = None
    ) -> None:
        self.certs = certs
        self.cfg = gw_cfg
        self.source = source or PlaneSource()
        self.gateway = Gateway(gw_cfg, self.source)
        self.agents: list[tuple[Agent, asyncio.Event, asyncio.Task[None]]] = []

    async def start(self) -> Harness:
        await self.gateway.start()
        return self

    def add_cr(
        self,
        name: str,
        ca: pki.CertKey,
        plane_id: str | None = None,
        namespace: str = "default-org",
        plane_type: str = "dataplane",
    ) -> None:
        self.source.put(PlaneCR(plane_type, namespace, name, plane_id or name, [ca.cert]))

    def start_agent(self, cfg: AgentConfig, executor: Executor) -> Agent:
        agent = Agent(cfg, executor)
        stop = asyncio.Event()
        self.agents.append((agent, stop, asyncio.create_task(agent.run(stop))))
        return agent

    async def restart_gateway(self) -> None:
        await self.gateway.drain()
        await self.gateway.stop()
        self.gateway = Gateway(self.cfg, self.source)
        await self.gateway.start()

    async def close(self) -> None:
        for _, stop, _ in self.agents:
            stop.set()
        await asyncio.gather(*(t for _, _, t in self.agents), return_exceptions=True)
        await self.gateway.drain()
        await self.gateway.stop()


# -- a small API server standing in for the agent's cluster ---------------------------------


class FakeAPI:
    """Answers a few Kubernetes-shaped paths and records what it saw."""

    def __init__(self) -> None:
        self.seen_auth: list[str | None] = []
        self.watch_closed = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> FakeAPI:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_get("/api/v1/namespaces/default/pods", self.pods)
        app.router.add_get("/api/v1/pods", self.watch)
        app.router.add_get("/big/{n}", self.big)
        app.router.add_post("/echo", self.echo)
        app.router.add_get("/slow", self.slow)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def pods(self, request: web.Request) -> web.Response:
        self.seen_auth.append(request.headers.get("Authorization"))
        return web.json_response({"kind": "PodList", "items": [{"metadata": {"name": "p1"}}]})

    async def big(self, request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.match_info["n"]))

    async def echo(self, request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), headers={"X-Query": request.query_string})

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def watch(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            for i in range(int(request.query.get("events", "1000000"))):
                line = json.dumps({"type": "ADDED", "object": {"n": i, "pad": "y" * 2000}}) + "\n"
                await resp.write(line.encode())
                await asyncio.sleep(0)
            await resp.write_eof()
        except ConnectionError:
            pass  # the agent cancelled the watch
        finally:
            self.watch_closed.set()
        return resp

    async def close(self) -> None:
        if self.runner:
            await self.runner.cleanup()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Harness, FakeAPI, Executor]]:
    certs = Certs(tmp_path)
    api = await FakeAPI().start()
    harness = await Harness(
        certs, gateway_config(certs, heartbeat_interval=0.5, heartbeat_timeout=1.5)
    ).start()
    kube = KubeClient(api.url, token="agent-sa-token")
    yield harness, api, Executor(kube, timeout=2.0)
    await harness.close()
    await kube.aclose()
    await api.close()


def proxy_url(
    h: Harness, path: str, cr: str = "dp1", plane_id: str = "dp1", ns: str = "default-org"
) -> str:
    return f"https://127.0.0.1:{h.cfg.internal_port}/api/proxy/dataplane/{plane_id}/{ns}/{cr}/k8s{path}"


async def connected_agent(h: Harness, ex: Executor, name: str = "dp1") -> Agent:
    ca, d = h.certs.agent(name)
    h.add_cr(name, ca)
    agent = h.start_agent(agent_config(h.cfg, d, name), ex)
    await wait_for(lambda: agent.connected)
    return agent


# -- tests ----------------------------------------------------------------------------------


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


async def test_internal_port_requires_the_gateway_ca(
    env: tuple[Harness, FakeAPI, Executor],
) -> None:
    h, _, _ = env
    ctx = ssl.create_default_context(cafile=str(h.certs.gw / "ca.crt"))
    async with httpx.AsyncClient(verify=ctx) as c:
        with pytest.raises(httpx.TransportError):
            await c.get(f"https://127.0.0.1:{h.cfg.internal_port}/api/v1/planes")


async def _ws_status(h: Harness, query: str, cert_dir: Path | None) -> int:
    ctx = ssl.create_default_context(cafile=str(h.certs.gw / "ca.crt"))
    if cert_dir is not None:
        ctx.load_cert_chain(str(cert_dir / "tls.crt"), str(cert_dir / "tls.key"))
    async with aiohttp.ClientSession() as s:
        try:
            async with s.ws_connect(f"wss://localhost:{h.cfg.port}/ws{query}", ssl=ctx) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as e:
            return e.status


async def test_agent_endpoint_status_codes(env: tuple[Harness, FakeAPI, Executor]) -> None:
    h, _, _ = env
    ca, d = h.certs.agent("dp1")
    h.add_cr("dp1", ca)
    bp_ca, other = h.certs.agent("bp1")
    h.add_cr("bp1", bp_ca, plane_type="buildplane")
    assert await _ws_status(h, "", d) == 400
    assert await _ws_status(h, "?planeType=controlplane&planeID=dp1", d) == 400
    assert await _ws_status(h, "?planeType=dataplane&planeID=dp1", None) == 401
    assert (
        await _ws_status(h, "?planeType=dataplane&planeID=dp1", other) == 401
    )  # another plane's CA
    assert await _ws_status(h, "?planeType=buildplane&planeID=dp1", d) == 401
    assert await _ws_status(h, "?planeType=dataplane&planeID=dp1", d) == 101
    _, stranger = h.certs.agent("stranger")  # a CA no CR names: the TLS handshake fails
    with pytest.raises(aiohttp.ClientError):
        await _ws_status(h, "?planeType=dataplane&planeID=dp1", stranger)
    async with httpx.AsyncClient() as c:
        text = (await c.get(f"http://127.0.0.1:{h.cfg.health_port}/metrics")).text
    assert 'choreoctl_gateway_auth_failures_total{reason="no_certificate"} 1' in text
    assert 'choreoctl_gateway_auth_failures_total{reason="bad_query"} 2' in text


async def test_cr_changes_revalidate_live_connections(
    env: tuple[Harness, FakeAPI, Executor],
) -> None:
    h, _, ex = env
    agent = await connected_agent(h, ex)
    ca = pki.CertKey((h.certs.root / "dp1" / "ca.crt").read_bytes(), b"")
    async with h.certs.internal_client() as c:
        h.add_cr(
            "dp1-second", ca, plane_id="dp1", namespace="org2"
        )  # created after the agent connected
        await wait_for(lambda: ("org2", "dp1-second") in h.gateway.registry.all()[0].authorized)
        r = await c.get(proxy_url(h, "/api/v1/namespaces/default/pods", cr="dp1-second", ns="org2"))
        assert r.status_code == 200
        h.source.remove("dataplane", ("org2", "dp1-second"))
        h.source.remove("dataplane", ("default-org", "dp1"))  # deleted while connected: dropped
        await wait_for(lambda: not h.gateway.registry.all())
        await wait_for(lambda: agent.failures.get() >= 1)  # and refused when it comes back


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


async def test_unknown_target_is_404(env: tuple[Harness, FakeAPI, Executor]) -> None:
    _, _, ex = env
    resp = await ex.run(p.Request("r", "GET", "/", target="helm"))
    assert resp.status_code == 404 and resp.error is not None


async def _dial_error(h: Harness, url: str, d: Path) -> str:
    from choreoctl.errors import ChoreoError
    from choreoctl.runtime.agent_dial import client_context, dial

    async with aiohttp.ClientSession() as s:
        try:
            ctx = client_context(str(d / "tls.crt"), str(d / "tls.key"), str(h.certs.gw / "ca.crt"))
            ws = await dial(s, url, "dataplane", "dp1", ctx, 5)
        except ChoreoError as e:
            return f"{type(e).__name__}: {e.message}"
        await ws.close()
        return "connected"


async def test_agent_dial_errors_say_what_to_fix(tmp_path: Path) -> None:
    import datetime as dt

    certs = Certs(tmp_path)
    h = await Harness(certs, gateway_config(certs, host="0.0.0.0")).start()
    try:
        ca, ok = certs.agent("dp1")
        h.add_cr("dp1", ca)
        port = h.cfg.port
        assert await _dial_error(h, f"wss://localhost:{port}/ws", ok) == "connected"
        err = await _dial_error(h, f"wss://127.0.0.2:{port}/ws", ok)
        assert (
            err.startswith("TrustError")
            and "it holds: localhost, cluster-gateway, 127.0.0.1" in err
        )
        _, stranger = certs.agent("stranger")
        assert "hung up during the handshake" in await _dial_error(
            h, f"wss://localhost:{port}/ws", stranger
        )
        now = dt.datetime.now(dt.UTC)
        _, old = certs.agent(
            "old",
            ca=ca,
            not_before=now - dt.timedelta(days=3),
            not_after=now - dt.timedelta(days=1),
        )
        assert "expired at" in await _dial_error(h, f"wss://localhost:{port}/ws", old)
        bp_ca, bp = certs.agent("bp1")
        h.add_cr("bp1", bp_ca, plane_type="buildplane")  # a known CA, but for another plane
        assert "HTTP 401" in await _dial_error(h, f"wss://localhost:{port}/ws", bp)
    finally:
        await h.close()


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
