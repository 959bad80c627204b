"""The plane status controller: keeps plane CR and Environment status current.

Why a long-poll on the gateway and not watches alone: the connection state lives only in
the gateway process, not in the API server. The controller asks the gateway's internal
API ``GET /api/v1/planes?since=<version>&wait=25``, which answers as soon as anything
changes (an agent connects, disconnects, gains or loses a CR) — so status follows a
connect or disconnect within about a second, where the reference samples once a minute
— and at the latest every ``resync`` seconds, when the controller also re-lists the CRs
(new Environments, edited planes). It is a separate process (``controller run``, the
control plane's controller manager) rather than part of the gateway so that the gateway
needs no write access to the API server and gateway replicas stay stateless.

Each status write is a merge patch of the status subresource, sent only when something
changed (a newer heartbeat alone is written at most once a minute).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from aiohttp import web

from choreoctl.errors import ChoreoError, RuntimeFailure
from choreoctl.runtime.backoff import Backoff
from choreoctl.runtime.config import API_VERSION, PLANE_KINDS
from choreoctl.runtime.jsonlog import fields
from choreoctl.runtime.lifecycle import serve_plain, stop_on_signals

if TYPE_CHECKING:
    from choreoctl.kube.client import KubeClient

log = logging.getLogger("choreoctl.controller")
EXPIRY_WARNING = dt.timedelta(days=14)
TIME = "%Y-%m-%dT%H:%M:%SZ"
Obj = dict[str, Any]


@dataclass
class ControllerConfig:
    """Everything ``controller run`` takes (flag names in comments)."""

    gateway_url: str  # --gateway-url
    client_cert: str  # --client-cert
    client_key: str  # --client-key
    server_ca: str  # --server-ca
    health_port: int = 8081  # --health-port (0: none)
    host: str = "0.0.0.0"
    resync: float = 10.0  # --resync
    wait: float = 25.0


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime(TIME)


def _condition(old: list[Obj], ctype: str, status: str, reason: str, message: str, gen: int) -> Obj:
    prev = next((c for c in old if c.get("type") == ctype), None)
    keep = prev is not None and prev.get("status") == status and prev.get("lastTransitionTime")
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": gen,
        "lastTransitionTime": prev["lastTransitionTime"] if keep and prev else _now(),
    }


def plane_status(obj: Obj, seen: Obj | None, now: dt.datetime | None = None) -> Obj:
    """The status a plane CR should have, from the gateway's view of it (None: unknown)."""
    old = obj.get("status") or {}
    old_conn = old.get("agentConnection") or {}
    conds = old.get("conditions") or []
    gen = int(obj["metadata"].get("generation") or 0)
    conn: Obj
    if seen is None:
        conn = {**old_conn, "connected": False, "connectedAgents": 0}
        conn["message"] = "the cluster gateway does not know this plane yet"
        ready = ("False", "GatewayUnaware", conn["message"])
    else:
        n = int(seen["connectedAgents"])
        conn = {"connected": n > 0, "connectedAgents": n}
        for key in ("lastConnectedTime", "lastDisconnectedTime", "lastHeartbeatTime"):
            value = seen.get(key) or old_conn.get(key)
            if value:
                conn[key] = value
        if seen.get("problem"):
            conn["message"] = f"clientCA: {seen['problem']}"
            ready = ("False", "InvalidClientCA", conn["message"])
        elif n:
            conn["message"] = f"{n} agent(s) connected"
            ready = ("True", "AgentConnected", conn["message"])
        else:
            conn["message"] = "no agent connected"
            ready = ("False", "AgentDisconnected", conn["message"])
    connected = "True" if conn["connected"] else "False"
    out = [
        _condition(conds, "Ready", *ready, gen),
        _condition(conds, "AgentConnected", connected, ready[1], ready[2], gen),
    ]
    expiry = (seen or {}).get("certificateNotAfter")
    if expiry:
        when = dt.datetime.strptime(expiry, TIME).replace(tzinfo=dt.UTC)
        if when - (now or dt.datetime.now(dt.UTC)) < EXPIRY_WARNING:
            cert = ("False", "ExpiringSoon", f"an agent certificate expires at {expiry}; renew it")
        else:
            cert = ("True", "Valid", f"agent certificates valid until at least {expiry}")
        out.append(_condition(conds, "AgentCertificateValid", *cert, gen))
    else:
        out += [c for c in conds if c.get("type") == "AgentCertificateValid"]
    return {"observedGeneration": gen, "agentConnection": conn, "conditions": out}


def environment_status(
    env: Obj, dataplanes: set[tuple[str, str]], connected: set[tuple[str, str]]
) -> Obj:
    """Ready only when the referenced DataPlane exists and has a connected agent."""
    ns = env["metadata"].get("namespace", "")
    ref = str((env.get("spec") or {}).get("dataPlaneRef") or "")
    gen = int(env["metadata"].get("generation") or 0)
    conds = (env.get("status") or {}).get("conditions") or []
    if not ref:
        ready = ("False", "NoDataPlane", "spec.dataPlaneRef is not set")
    elif (ns, ref) not in dataplanes:
        ready = ("False", "DataPlaneNotFound", f"DataPlane {ns}/{ref} does not exist")
    elif (ns, ref) not in connected:
        ready = ("False", "DataPlaneNotConnected", f"DataPlane {ref} has no connected agent")
    else:
        ready = ("True", "DataPlaneConnected", f"DataPlane {ref} is connected")
    return {"observedGeneration": gen, "conditions": [_condition(conds, "Ready", *ready, gen)]}


def _strip(status: Obj) -> Obj:
    conds = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions") or []
    ]
    conn = status.get("agentConnection")
    out = {**status, "conditions": conds}
    if conn is not None:
        out["agentConnection"] = {k: v for k, v in conn.items() if k != "lastHeartbeatTime"}
    return out


def needs_write(old: Obj, new: Obj, heartbeat_every: float = 60.0) -> bool:
    """Whether ``new`` is worth a write: transition times never count, a newer heartbeat
    only once the recorded one is ``heartbeat_every`` seconds old."""
    if _strip(old) != _strip(new):
        return True
    beat_old = (old.get("agentConnection") or {}).get("lastHeartbeatTime")
    beat_new = (new.get("agentConnection") or {}).get("lastHeartbeatTime")
    if not beat_new or beat_new == beat_old:
        return False
    if not beat_old:
        return True
    then = dt.datetime.strptime(beat_old, TIME).replace(tzinfo=dt.UTC)
    return (dt.datetime.now(dt.UTC) - then).total_seconds() >= heartbeat_every


class Controller:
    """One controller process: long-poll the gateway, write status."""

    def __init__(self, config: ControllerConfig, kube: KubeClient) -> None:
        self.config = config
        self.kube = kube
        self.version = -1
        self.seen: dict[tuple[str, str, str], Obj] | None = None  # None: gateway unreachable
        self.writes = 0
        self.healthy = False
        self._wake = asyncio.Event()

    def _client(self) -> httpx.AsyncClient:
        cfg = self.config
        try:
            ctx = ssl.create_default_context(cafile=cfg.server_ca)
            ctx.load_cert_chain(cfg.client_cert, cfg.client_key)
        except (OSError, ssl.SSLError) as e:
            raise RuntimeFailure(
                f"cannot load the controller TLS files: {e}",
                hint="mount Secret controller-manager-tls or fix "
                "--client-cert/--client-key/--server-ca",
            ) from e
        return httpx.AsyncClient(base_url=cfg.gateway_url, verify=ctx, timeout=cfg.wait + 10)

    async def follow_gateway(self, stop: asyncio.Event) -> None:
        """Long-poll the gateway's plane state; wake the reconciler on every change."""
        backoff = Backoff(base=0.5, cap=10.0, healthy_after=30.0)
        async with self._client() as http:
            while not stop.is_set():
                try:
                    params = {"since": self.version, "wait": self.config.wait}
                    r = await http.get("/api/v1/planes", params=params)
                    r.raise_for_status()
                    data = r.json()
                    backoff.connected()
                except (httpx.HTTPError, ValueError) as e:
                    backoff.disconnected()
                    if self.seen is not None:
                        log.warning(
                            "cannot reach the gateway",
                            extra=fields(error=str(e) or type(e).__name__),
                        )
                    self.seen, self.version = None, -1
                    self._wake.set()
                    await _sleep(stop, backoff.next_delay())
                    continue
                self.version = int(data["version"])
                planes = data["planes"]
                self.seen = {(d["planeType"], d["namespace"], d["name"]): d for d in planes}
                self._wake.set()

    async def reconcile(self) -> None:
        """Bring every plane CR's and Environment's status in line with the gateway's view."""
        dataplanes: set[tuple[str, str]] = set()
        connected: set[tuple[str, str]] = set()
        for plane_type, kind in PLANE_KINDS.items():
            for obj in await self.kube.list(API_VERSION, kind):
                md = obj["metadata"]
                key = (md.get("namespace", ""), md["name"])
                seen = None if self.seen is None else self.seen.get((plane_type, *key))
                status = plane_status(obj, seen)
                if self.seen is None:
                    status["agentConnection"]["message"] = "the cluster gateway is unreachable"
                if kind == "DataPlane":
                    dataplanes.add(key)
                    if status["agentConnection"]["connected"]:
                        connected.add(key)
                await self._write(kind, obj, status)
        for env in await self.kube.list(API_VERSION, "Environment"):
            await self._write("Environment", env, environment_status(env, dataplanes, connected))

    async def _write(self, kind: str, obj: Obj, status: Obj) -> None:
        if not needs_write(obj.get("status") or {}, status):
            return
        md = obj["metadata"]
        await self.kube.patch_status(
            API_VERSION, kind, md["name"], md.get("namespace"), {"status": status}
        )
        self.writes += 1

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile on every gateway change and every ``resync`` seconds until ``stop``."""
        follower = asyncio.create_task(self.follow_gateway(stop))
        backoff = Backoff(base=0.5, cap=15.0, healthy_after=30.0)
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.reconcile()
                    self.healthy = True
                    backoff.connected()
                    delay = self.config.resync
                except ChoreoError as e:
                    self.healthy = False
                    backoff.disconnected()
                    delay = backoff.next_delay()
                    log.warning(
                        "reconcile failed", extra=fields(error=e.message, retryIn=round(delay, 2))
                    )
                waker = asyncio.create_task(self._wake.wait())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait(
                    {waker, stopper, follower}, timeout=delay, return_when=asyncio.FIRST_COMPLETED
                )
                waker.cancel()
                stopper.cancel()
                if follower.done():
                    follower.result()  # re-raises what stopped it (e.g. unreadable TLS files)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

    async def serve_health(self) -> web.AppRunner | None:
        """``/health`` and ``/ready`` (the last reconcile worked) on the health port."""
        if not self.config.health_port:
            return None

        async def health(_: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def ready(_: web.Request) -> web.Response:
            body = {"ready": self.healthy, "gatewayReachable": self.seen is not None}
            return web.json_response(body, status=200 if self.healthy else 503)

        return await serve_plain(
            {"/health": health, "/ready": ready}, self.config.host, self.config.health_port
        )


async def _sleep(stop: asyncio.Event, delay: float) -> None:
    try:
        async with asyncio.timeout(delay):
            await stop.wait()
    except TimeoutError:
        pass


async def run(
    config: ControllerConfig, kube: KubeClient, stop: asyncio.Event | None = None
) -> None:
    """Run the controller until SIGTERM/SIGINT (or ``stop``)."""
    stop = stop_on_signals(stop)
    ctl = Controller(config, kube)
    runner = await ctl.serve_health()
    try:
        await ctl.run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
        log.info("controller stopped")
