"""The cluster gateway process: agent port (8443), internal API (8444), health (8080).

Shutdown is a drain: on SIGTERM the gateway turns not-ready, stops taking new agents
and proxy requests, waits for in-flight requests (up to ``drain_timeout``), then closes
every agent with code 1012 (service restart), which choreoctl agents answer with a
prompt reconnect instead of a backoff.

Every port bounds what a silent or slow client can hold: a TLS handshake must finish
within ``handshake_timeout`` and a request's headers must arrive within
``header_timeout`` of the connection opening (or of the previous response, on a
keep-alive connection), so a slowloris client costs one socket for seconds, not forever.

Each TLS connection of asyncio carries a 256 KiB read buffer
(``asyncio.sslproto.SSLProtocol.max_size``); an idle agent needs almost none of it, so
the gateway lowers it to :data:`TLS_READ_BUFFER` (measured in README "Benchmarks").
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web

from choreoctl.errors import RuntimeFailure
from choreoctl.runtime import protocol as p
from choreoctl.runtime.gateway import proxy, ws
from choreoctl.runtime.gateway.auth import AgentTrust, PlaneSource, require_files, server_context
from choreoctl.runtime.gateway.keys import GATEWAY
from choreoctl.runtime.gateway.registry import Registry
from choreoctl.runtime.jsonlog import fields
from choreoctl.runtime.lifecycle import stop_on_signals
from choreoctl.runtime.metrics import Labels
from choreoctl.runtime.metrics import Registry as Metrics
from choreoctl.runtime.tuning import tune_allocator

log = logging.getLogger("choreoctl.gateway")
TLS_READ_BUFFER = 16 * 1024
CLOSE_RESTART = 1012


@dataclass
class GatewayConfig:
    """Everything ``gateway serve`` takes (flag names in comments)."""

    tls_cert: str  # --tls-cert
    tls_key: str  # --tls-key
    client_ca: str  # --client-ca: CA of the internal port's clients (the controller)
    host: str = "0.0.0.0"  # --host
    port: int = 8443  # --port
    internal_port: int = 8444  # --internal-port
    health_port: int = 8080  # --health-port
    heartbeat_interval: float = 30.0  # --heartbeat-interval
    heartbeat_timeout: float = 90.0  # --heartbeat-timeout
    request_timeout: float = 30.0
    drain_timeout: float = 20.0
    handshake_timeout: float = 10.0  # TLS handshake, from TCP accept
    header_timeout: float = 15.0  # request headers complete; also the keep-alive idle limit
    max_inflight_per_agent: int = 256
    max_pending: int = 10_000
    stream_window: int = p.STREAM_WINDOW


class _Site(web.TCPSite):
    """aiohttp's TCP site with a TLS handshake timeout (asyncio's default is 60 s)."""

    handshake_timeout = 10.0

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            ssl_handshake_timeout=self.handshake_timeout if self._ssl_context else None,
        )


class Gateway:
    """The state shared by the three listeners of one gateway process."""

    def __init__(self, config: GatewayConfig, source: PlaneSource) -> None:
        self.config = config
        self.registry = Registry(source)
        self.draining = False
        self.ready = False
        self.pending = 0
        self.metrics = Metrics()
        m = self.metrics
        m.gauge(
            "choreoctl_gateway_connected_agents",
            "Agents connected, per plane type.",
            self._agent_gauge,
        )
        self.requests = m.counter(
            "choreoctl_gateway_requests_total", "Proxied requests by status code."
        )
        self.latency = m.histogram(
            "choreoctl_gateway_request_duration_seconds", "Proxied request latency."
        )
        self.bytes = m.counter("choreoctl_gateway_bytes_total", "Bytes relayed, by direction.")
        self.connects = m.counter(
            "choreoctl_gateway_agent_connects_total", "Agent (re)connections."
        )
        self.auth_failures = m.counter(
            "choreoctl_gateway_auth_failures_total", "Refused agents by reason."
        )
        self._runners: list[web.AppRunner] = []

    def _agent_gauge(self) -> dict[Labels, float]:
        out: dict[Labels, float] = {
            (("plane_type", t),): 0.0 for t in ("dataplane", "buildplane", "observabilityplane")
        }
        for conn in self.registry.all():
            key = (("plane_type", conn.plane_type),)
            out[key] = out.get(key, 0.0) + 1
        return out

    async def start(self) -> None:
        """Start following plane CRs and open the three ports."""
        cfg = self.config
        require_files(cfg.tls_cert, cfg.tls_key, cfg.client_ca)
        import asyncio.sslproto

        asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER
        tune_allocator()  # large relays: see choreoctl/runtime/tuning.py
        trust = AgentTrust(cfg.tls_cert, cfg.tls_key)
        source = self.registry.source
        source.trust = trust
        for cr in source.crs.values():
            trust.add(cr.bundle)
        internal_ctx = server_context(cfg.tls_cert, cfg.tls_key, cfg.client_ca)
        await source.start()

        agents = web.Application(client_max_size=1024)
        agents[GATEWAY] = self
        agents.router.add_get("/ws", ws.handle)

        internal = web.Application(client_max_size=p.MAX_REQUEST_BODY + 1)
        internal[GATEWAY] = self
        prefix = "/api/proxy/{planeType}/{planeID}/{crNamespace}/{crName}/k8s/{path:.*}"
        internal.router.add_route("*", prefix, proxy.handle_proxy)
        internal.router.add_get("/api/v1/planes/{planeType}/{planeID}/status", proxy.handle_status)
        internal.router.add_post("/api/v1/planes/notify", proxy.handle_notify)
        internal.router.add_get("/api/v1/planes", proxy.handle_planes)

        health = web.Application()
        health[GATEWAY] = self
        health.router.add_get("/health", self._health)
        health.router.add_get("/ready", self._ready)
        health.router.add_get("/metrics", self._metrics)

        for app, port, ctx in (
            (health, cfg.health_port, None),
            (internal, cfg.internal_port, internal_ctx),
            (agents, cfg.port, trust.context),
        ):
            runner = web.AppRunner(
                app,
                access_log=None,
                handle_signals=False,
                shutdown_timeout=1.0,
                # aiohttp closes a connection still waiting for a complete request when
                # this runs out, counted from accept: the header-read timeout.
                keepalive_timeout=cfg.header_timeout,
                # A client that goes away cancels its handler, so a quiet watch or log
                # follow ends upstream at once, not at the next chunk (proxy._stream).
                handler_cancellation=app is internal,
            )
            await runner.setup()
            site = _Site(runner, cfg.host, port, ssl_context=ctx, backlog=4096)
            site.handshake_timeout = cfg.handshake_timeout
            try:
                await site.start()
            except OSError as e:
                await self.stop()
                raise RuntimeFailure(
                    f"cannot listen on {cfg.host}:{port}: {e.strerror or e}",
                    hint="another process holds the port; choose another with "
                    "--port, --internal-port or --health-port",
                ) from e
            self._runners.append(runner)
        self.ready = True
        log.info(
            "gateway listening",
            extra=fields(port=cfg.port, internalPort=cfg.internal_port, healthPort=cfg.health_port),
        )

    async def drain(self) -> None:
        """Refuse new work, let in-flight requests finish, close agents with 1012."""
        self.draining, self.ready = True, False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_timeout
        while self.pending and loop.time() < deadline:
            await asyncio.sleep(0.05)
        conns = self.registry.all()
        log.info("gateway draining", extra=fields(agents=len(conns), unfinished=self.pending))
        await asyncio.gather(*(c.close(CLOSE_RESTART, "gateway restarting") for c in conns))

    async def stop(self) -> None:
        """Close the listeners and stop following CRs."""
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners = []
        await self.registry.source.stop()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready(self, request: web.Request) -> web.Response:
        return web.json_response({"ready": self.ready}, status=200 if self.ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics.render(), content_type="text/plain", charset="utf-8")


async def serve(
    config: GatewayConfig, source: PlaneSource, stop: asyncio.Event | None = None
) -> None:
    """Run a gateway until SIGTERM/SIGINT (or ``stop`` is set), then drain and exit."""
    stop = stop_on_signals(stop)
    gw = Gateway(config, source)
    await gw.start()
    try:
        await stop.wait()
        await gw.drain()
    finally:
        await gw.stop()
        log.info("gateway stopped")
