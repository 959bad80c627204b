"""The cluster agent: dial the gateway, serve its requests against this cluster, reconnect.

The agent never trusts a quiet socket: it pings the gateway every heartbeat interval and
treats a connection with nothing received for the heartbeat timeout as dead (the
reference relies on the gateway's pings only, so a half-open connection behind a NAT can
look "connected" for hours). Reconnects use exponential backoff with full jitter; a
close with code 1012 (the gateway restarting) reconnects within a second instead.
Requests are bounded: at most ``max_concurrent`` run at once and ``max_queued`` wait;
beyond that the agent answers 503 at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from choreoctl.errors import ChoreoError
from choreoctl.runtime import protocol as p
from choreoctl.runtime.agent_dial import client_context, dial, files_present
from choreoctl.runtime.agent_exec import Credit, Executor
from choreoctl.runtime.backoff import Backoff
from choreoctl.runtime.jsonlog import fields
from choreoctl.runtime.lifecycle import serve_plain, stop_on_signals
from choreoctl.runtime.metrics import Registry as Metrics
from choreoctl.runtime.tuning import tune_allocator

log = logging.getLogger("choreoctl.agent")
CLOSE_RESTART = 1012


@dataclass
class AgentConfig:
    """Everything ``agent run`` takes (flag names in comments)."""

    server_url: str  # --server-url
    plane_type: str  # --plane-type (canonical)
    plane_id: str  # --plane-id
    client_cert: str  # --client-cert
    client_key: str  # --client-key
    server_ca: str  # --server-ca
    health_port: int = 8080  # --health-port (0: no health server)
    host: str = "0.0.0.0"
    heartbeat_interval: float = 15.0  # --heartbeat-interval
    heartbeat_timeout: float = 45.0  # --heartbeat-timeout
    handshake_timeout: float = 15.0
    request_timeout: float = 30.0
    max_concurrent: int = 64
    max_queued: int = 1024
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    healthy_after: float = 60.0


class Agent:
    """One agent process: the connection loop plus its health endpoints."""

    def __init__(self, config: AgentConfig, executor: Executor) -> None:
        self.config = config
        self.executor = executor
        self.connected = False
        self.backoff = Backoff(config.backoff_base, config.backoff_cap, config.healthy_after)
        self._slots = asyncio.Semaphore(config.max_concurrent)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._credits: dict[str, Credit] = {}
        self._send_lock = asyncio.Lock()
        self._binary = False  # the gateway takes stream data as binary frames
        self._last_rx = 0.0  # loop time of the last frame from the gateway
        self.metrics = Metrics()
        self.connects = self.metrics.counter("choreoctl_agent_connects_total", "Successful dials.")
        self.failures = self.metrics.counter("choreoctl_agent_dial_failures_total", "Failed dials.")
        self.handled = self.metrics.counter("choreoctl_agent_requests_total", "Requests by status.")
        self.metrics.gauge(
            "choreoctl_agent_connected",
            "1 when connected to the gateway.",
            lambda: {(): float(self.connected)},
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve, reconnect, until ``stop`` is set."""
        cfg = self.config
        files_present(cfg.client_cert, cfg.client_key, cfg.server_ca)
        while not stop.is_set():
            delay = await self._attempt(stop)
            if stop.is_set():
                break
            try:
                async with asyncio.timeout(delay):
                    await stop.wait()
            except TimeoutError:
                pass

    async def _attempt(self, stop: asyncio.Event) -> float:
        """One dial and, if it works, one connection's life; returns the delay before the next."""
        cfg = self.config
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=cfg.handshake_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                ctx = client_context(cfg.client_cert, cfg.client_key, cfg.server_ca)
                ws = await dial(
                    session,
                    cfg.server_url,
                    cfg.plane_type,
                    cfg.plane_id,
                    ctx,
                    cfg.handshake_timeout,
                )
            except ChoreoError as e:
                self.failures.inc()
                delay = self.backoff.next_delay()
                log.error(
                    "cannot connect to the gateway",
                    extra=fields(
                        error=e.message,
                        hint=e.hint,
                        retryIn=round(delay, 2),
                        attempt=self.backoff.attempt,
                    ),
                )
                return delay
            self.backoff.connected()
            self.connected = True
            self.connects.inc()
            ext = ws._response.headers.get(p.EXTENSION_HEADER) == p.EXTENSION_VERSION
            self._binary = ext and ws._response.headers.get(p.BINARY_HEADER) == "1"
            log.info(
                "connected to the gateway",
                extra=fields(
                    url=cfg.server_url,
                    planeType=cfg.plane_type,
                    planeID=cfg.plane_id,
                    extension=ext,
                ),
            )
            try:
                code = await self._serve(ws, stop)
            finally:
                self.connected = False
                await self._cancel_all()
                if not ws.closed:
                    await ws.close(code=1001 if stop.is_set() else 1000)
            healthy = self.backoff.disconnected()
            if code == CLOSE_RESTART:
                log.info("gateway restarting; reconnecting promptly")
                self.backoff.brief()
                return random.uniform(0.05, 1.0)
            if healthy:
                self.backoff.brief()  # the usual reason: the gateway crashed or moved
            delay = self.backoff.next_delay()
            log.warning(
                "disconnected from the gateway", extra=fields(code=code, retryIn=round(delay, 2))
            )
            return delay

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> int | None:
        """Read frames until the socket closes, goes silent, or ``stop`` is set.

        One plain ``receive()`` per frame: the watchdog task (pings, silence, ``stop``)
        ends the loop by closing the socket, so a frame costs no task, wait or timer.
        """
        loop = asyncio.get_running_loop()
        self._last_rx = loop.time()
        ended: list[str] = []  # why the watchdog closed the socket
        watchdog = asyncio.create_task(self._watchdog(ws, stop, ended))
        try:
            while True:
                msg = await ws.receive()
                self._last_rx = loop.time()
                if ended:
                    return None
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._dispatch(ws, msg.data)
                elif msg.type is aiohttp.WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type is aiohttp.WSMsgType.CLOSE:
                    # the code the gateway sent; ws.close_code may say 1006 when the
                    # gateway hangs up right after its close frame (a restart)
                    return int(msg.data) if isinstance(msg.data, int) else ws.close_code
                elif msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    return ws.close_code
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    log.warning("connection error", extra=fields(error=str(ws.exception())))
                    return None
        finally:
            if ended:
                await watchdog  # it is closing the socket: let it finish
            else:
                watchdog.cancel()

    async def _watchdog(
        self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event, ended: list[str]
    ) -> None:
        """Ping every heartbeat interval; close the socket (ending :meth:`_serve`) when
        ``stop`` is set or nothing arrived for the heartbeat timeout."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        tick = max(0.05, min(cfg.heartbeat_interval, cfg.heartbeat_timeout / 3))
        next_ping = loop.time() + cfg.heartbeat_interval
        while not ws.closed:
            try:
                async with asyncio.timeout(tick):
                    await stop.wait()
                ended.append("stop")
                break
            except TimeoutError:
                pass
            now = loop.time()
            if now - self._last_rx > cfg.heartbeat_timeout:
                log.warning("no frame from the gateway within the heartbeat timeout; reconnecting")
                ended.append("silent")
                break
            if now >= next_ping:
                next_ping = now + cfg.heartbeat_interval
                try:
                    async with asyncio.timeout(10.0):
                        await ws.ping()
                except (TimeoutError, ConnectionError, RuntimeError):
                    pass  # a dead socket shows as silence, or as a closed read
        if ended and not ws.closed:
            await ws.close(code=1001 if stop.is_set() else 1000)

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, msg: p.Message) -> None:
        if (
            self._binary
            and isinstance(msg, p.Chunk)
            and msg.data
            and not (msg.is_close or msg.stream_id)
        ):
            frame, kind = p.encode_binary(msg), aiohttp.WSMsgType.BINARY
        else:
            frame, kind = p.encode_bytes(msg), aiohttp.WSMsgType.TEXT
        async with asyncio.timeout(30.0):
            async with self._send_lock:
                await ws.send_frame(frame, kind)

    def _dispatch(self, ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
        try:
            msg = p.decode(text)
        except p.ProtocolError as e:
            log.warning("dropped malformed frame", extra=fields(error=str(e)))
            return
        if isinstance(msg, p.Credit):
            credit = self._credits.get(msg.request_id)
            if credit is not None:
                credit.grant(msg.credit)
        elif isinstance(msg, p.Chunk):
            if msg.is_close and msg.request_id in self._tasks:
                self._tasks[msg.request_id].cancel()  # the gateway cancelled the stream
        elif isinstance(msg, p.Request):
            if msg.request_id in self._tasks:
                return  # a duplicate ID: the first one keeps running
            if len(self._tasks) >= self.config.max_concurrent + self.config.max_queued:
                busy = p.Response(msg.request_id, 503, error=p.ErrorInfo("agent busy", code="BUSY"))
                self._spawn(msg.request_id, self._send(ws, busy))
                return
            self._spawn(msg.request_id, self._handle(ws, msg))

    def _spawn(self, rid: str, coro: object) -> None:
        assert asyncio.iscoroutine(coro)
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks[rid] = task
        task.add_done_callback(lambda t: self._done(rid, t))

    def _done(self, rid: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(rid) is task:
            del self._tasks[rid]
        self._credits.pop(rid, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("request failed", extra=fields(requestID=rid, error=repr(task.exception())))

    async def _handle(self, ws: aiohttp.ClientWebSocketResponse, req: p.Request) -> None:
        async with self._slots:
            if req.stream:
                credit = Credit(req.window)
                self._credits[req.request_id] = credit
                await self.executor.stream(req, lambda m: self._send(ws, m), credit)
                self.handled.inc(code="stream")
            else:
                resp = await self.executor.run(req)
                self.handled.inc(code=str(resp.status_code))
                await self._send(ws, resp)

    async def _cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def serve_health(self) -> web.AppRunner | None:
        """``/health``, ``/ready`` (connected) and ``/metrics`` on the health port."""
        if not self.config.health_port:
            return None

        async def health(_: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def ready(_: web.Request) -> web.Response:
            return web.json_response(
                {"connected": self.connected}, status=200 if self.connected else 503
            )

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(text=self.metrics.render(), content_type="text/plain")

        return await serve_plain(
            {"/health": health, "/ready": ready, "/metrics": metrics},
            self.config.host,
            self.config.health_port,
        )


async def run(config: AgentConfig, executor: Executor, stop: asyncio.Event | None = None) -> None:
    """Run an agent until SIGTERM/SIGINT (or ``stop``)."""
    stop = stop_on_signals(stop)
    tune_allocator()
    agent = Agent(config, executor)
    runner = await agent.serve_health()
    try:
        await agent.run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
        log.info("agent stopped")
