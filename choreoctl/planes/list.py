"""``plane list``: every registered plane with its agent connection and CA expiry."""

from __future__ import annotations

import datetime as dt
from typing import Any

from choreoctl import pki
from choreoctl.errors import TrustError
from choreoctl.kube.client import KubeClient, Obj
from choreoctl.planes.crs import API_VERSION, KINDS

PLANE_TYPE = {"DataPlane": "data", "BuildPlane": "build", "ObservabilityPlane": "observability"}


def _ca_expiry(obj: Obj) -> str:
    value = ((obj.get("spec") or {}).get("clusterAgent", {}).get("clientCA") or {}).get("value")
    if not value:
        return ""
    try:
        certs = pki.load_certs(value)
    except TrustError:
        return "unparseable"
    end = min(pki.not_after(c) for c in certs)
    return end.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plane_row(obj: Obj) -> dict[str, Any]:
    """A plane CR as a row: type, name, planeID, cluster, connection and CA expiry."""
    meta = obj.get("metadata") or {}
    conn = (obj.get("status") or {}).get("agentConnection") or {}
    spec = obj.get("spec") or {}
    return {
        "type": PLANE_TYPE.get(str(obj.get("kind")), str(obj.get("kind"))),
        "name": meta.get("name", ""),
        "planeID": spec.get("planeID") or meta.get("name", ""),
        "cluster": (meta.get("labels") or {}).get("openchoreo.dev/cluster", ""),
        "connected": bool(conn.get("connected")),
        "agents": int(conn.get("connectedAgents") or 0),
        "lastHeartbeat": conn.get("lastHeartbeatTime", ""),
        "caExpiry": _ca_expiry(obj),
        "message": conn.get("message", ""),
    }


async def list_planes(control: KubeClient, namespace: str) -> list[dict[str, Any]]:
    """Rows of every DataPlane, BuildPlane and ObservabilityPlane in ``namespace``."""
    rows: list[dict[str, Any]] = []
    for kind in KINDS.values():
        rows.extend(plane_row(o) for o in await control.list(API_VERSION, kind, namespace))
    return rows
