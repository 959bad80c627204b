"""The connected agents, what each is authorized for, and how requests are spread over them.

Re-validation runs whenever the plane source reports a change (a CR created, updated
or deleted, or a notify): every live connection of that plane is checked again against
the current CRs, gaining or losing CRs, and closed when none is left. A version number
that bumps on every change lets the status controller long-poll instead of sampling.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from choreoctl.runtime.gateway.auth import CRKey, PlaneSource, authorize
from choreoctl.runtime.jsonlog import fields

if TYPE_CHECKING:
    from cryptography import x509

    from choreoctl.runtime.gateway.tunnel import AgentConn

log = logging.getLogger("choreoctl.gateway.registry")

PlaneKey = tuple[str, str]  # (plane type, plane ID)
CLOSE_UNAUTHORIZED = 4403  # the CRs that authorized this agent are gone or changed


def _iso(t: dt.datetime | None) -> str | None:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


@dataclass
class _History:
    last_connected: dt.datetime | None = None
    last_disconnected: dt.datetime | None = None


class Registry:
    """Agents by plane, with the CRs each one serves."""

    def __init__(self, source: PlaneSource) -> None:
        self.source = source
        self.conns: dict[PlaneKey, list[AgentConn]] = defaultdict(list)
        self.certs: dict[str, x509.Certificate] = {}
        self.history: dict[tuple[str, CRKey], _History] = defaultdict(_History)
        self.version = 0
        self._event = asyncio.Event()
        self._rr = 0
        self._tasks: set[asyncio.Task[None]] = set()
        source.subscribers.append(self._on_source_change)

    # -- connections ----------------------------------------------------------------

    async def authorize(
        self, plane_type: str, plane_id: str, cert: x509.Certificate
    ) -> tuple[set[CRKey], list[str]]:
        """The CRs ``cert`` may serve for this plane, and why the others refused it."""
        return authorize(cert, await self.source.planes(plane_type, plane_id))

    def add(self, conn: AgentConn, cert: x509.Certificate, granted: set[CRKey]) -> None:
        conn.authorized = set(granted)
        self.certs[conn.id] = cert
        self.conns[(conn.plane_type, conn.plane_id)].append(conn)
        now = dt.datetime.now(dt.UTC)
        for key in granted:
            self.history[(conn.plane_type, key)].last_connected = now
        self.bump()

    def remove(self, conn: AgentConn) -> None:
        group = self.conns.get((conn.plane_type, conn.plane_id), [])
        if conn in group:
            group.remove(conn)
            if not group:
                self.conns.pop((conn.plane_type, conn.plane_id), None)
            now = dt.datetime.now(dt.UTC)
            for key in conn.authorized:
                self.history[(conn.plane_type, key)].last_disconnected = now
            self.certs.pop(conn.id, None)
            self.bump()

    def all(self) -> list[AgentConn]:
        return [c for group in self.conns.values() for c in group]

    def pick(self, plane_type: str, plane_id: str, cr: CRKey) -> tuple[AgentConn | None, int]:
        """The least busy authorized agent for ``cr`` (round-robin on ties), and how many
        agents of the plane are connected at all."""
        group = [c for c in self.conns.get((plane_type, plane_id), []) if not c.closed]
        ok = [c for c in group if cr in c.authorized and c.inflight < c.max_inflight]
        if not ok:
            return None, len(group)
        self._rr += 1
        ok.sort(key=lambda c: c.inflight)
        best = [c for c in ok if c.inflight == ok[0].inflight]
        return best[self._rr % len(best)], len(group)

    def authorized_anywhere(self, plane_type: str, plane_id: str, cr: CRKey) -> bool:
        return any(cr in c.authorized for c in self.conns.get((plane_type, plane_id), []))

    # -- re-validation --------------------------------------------------------------

    def _on_source_change(self, plane_type: str, plane_id: str) -> None:
        if (plane_type, plane_id) in self.conns:
            task = asyncio.get_running_loop().create_task(self.revalidate(plane_type, plane_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self.bump()

    async def revalidate(self, plane_type: str, plane_id: str) -> None:
        """Check every live connection of the plane against the current CRs."""
        crs = await self.source.planes(plane_type, plane_id)
        now = dt.datetime.now(dt.UTC)
        for conn in list(self.conns.get((plane_type, plane_id), [])):
            cert = self.certs.get(conn.id)
            if cert is None:
                continue
            granted, reasons = authorize(cert, crs)
            for key in granted - conn.authorized:
                self.history[(plane_type, key)].last_connected = now
            for key in conn.authorized - granted:
                self.history[(plane_type, key)].last_disconnected = now
            if granted != conn.authorized:
                log.info(
                    "agent authorization changed",
                    extra=fields(
                        agent=conn.id,
                        planeType=plane_type,
                        planeID=plane_id,
                        granted=sorted("/".join(k) for k in granted),
                        reasons=reasons,
                    ),
                )
            conn.authorized = granted
            if not granted:
                await conn.close(CLOSE_UNAUTHORIZED, "no plane CR authorizes this agent any more")
                self.remove(conn)
        self.bump()

    # -- status ---------------------------------------------------------------------

    def bump(self) -> None:
        """Something changed: wake every long-poll."""
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait_change(self, since: int, timeout: float) -> None:
        """Return when the version differs from ``since`` or ``timeout`` has passed."""
        if self.version != since:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            pass

    def plane_status(self, plane_type: str, plane_id: str) -> dict[str, Any]:
        """OpenChoreo's status document for one plane."""
        group = self.conns.get((plane_type, plane_id), [])
        last = max((c.last_seen_wall for c in group), default=None)
        return {
            "planeType": plane_type,
            "planeID": plane_id,
            "connected": bool(group),
            "connectedAgents": len(group),
            "lastSeen": _iso(last),
        }

    def cr_status(self) -> list[dict[str, Any]]:
        """Per plane CR: connected agents, times and the earliest agent certificate expiry."""
        out = []
        for (plane_type, cr_key), cr in sorted(self.source.crs.items()):
            conns = [
                c for c in self.conns.get((plane_type, cr.plane_id), []) if cr_key in c.authorized
            ]
            hist = self.history.get((plane_type, cr_key), _History())
            out.append(
                {
                    "planeType": plane_type,
                    "planeID": cr.plane_id,
                    "namespace": cr_key[0],
                    "name": cr_key[1],
                    "connected": bool(conns),
                    "connectedAgents": len(conns),
                    "lastConnectedTime": _iso(hist.last_connected),
                    "lastDisconnectedTime": _iso(hist.last_disconnected),
                    "lastHeartbeatTime": _iso(max((c.last_seen_wall for c in conns), default=None)),
                    "certificateNotAfter": _iso(
                        min((c.cert_not_after for c in conns), default=None)
                    ),
                    "problem": cr.problem,
                }
            )
        return out
