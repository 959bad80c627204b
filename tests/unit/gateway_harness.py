"""A gateway and agents over real loopback TLS sockets, with a small aiohttp server as the
agents' Kubernetes API: the harness of the gateway unit tests.

:class:`Certs`, :func:`free_port`, :class:`Harness` and the ``env`` fixture (which
tests/unit/conftest.py provides to every unit test) are shared by the gateway's unit tests
and reused by the integration tests, which point the agents at real API servers instead.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from choreoctl import pki
from choreoctl.kube.client import KubeClient
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
