"""What doctor's checks share: the plane CRs, the gateway CA and conditions.

Plane CRs and the gateway CA live in the control plane's cluster; a check running for
another cluster reaches them through :meth:`CheckContext.peer`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from choreoctl import pki
from choreoctl.checks.framework import CheckContext
from choreoctl.errors import ClusterError
from choreoctl.planes.crs import API_VERSION, KINDS, org_namespace
from choreoctl.topology.model import Plane, PlaneKind
from choreoctl.trust.names import CA_KEY, GATEWAY_CA_SECRET
from choreoctl.trust.objects import read_secret

if TYPE_CHECKING:
    from cryptography import x509

Obj = dict[str, Any]


def agent_planes_here(ctx: CheckContext) -> list[Plane]:
    """Planes on this cluster that run a cluster agent (all but the control plane)."""
    return [p for p in ctx.planes if p.kind is not PlaneKind.control]


def is_control_cluster(ctx: CheckContext) -> bool:
    """Whether this context's cluster hosts the control plane."""
    return ctx.topology.control.cluster == ctx.name


async def plane_cr(ctx: CheckContext, plane: Plane) -> Obj | None:
    """The plane's CR (DataPlane, BuildPlane, ObservabilityPlane) from the control plane."""
    control = ctx.peer(ctx.topology.control.cluster)
    ns = org_namespace(ctx.topology)
    key = f"cr/{plane.kind.value}/{plane.name}"
    found: Obj | None = await ctx.cached(
        key, lambda: control.get(API_VERSION, KINDS[plane.kind], plane.name, ns)
    )
    return found


async def gateway_ca(ctx: CheckContext) -> list[x509.Certificate]:
    """The gateway's current CA certificate(s), from Secret cluster-gateway-ca."""

    async def fetch() -> list[x509.Certificate]:
        control = ctx.peer(ctx.topology.control.cluster)
        ns = ctx.topology.control.namespace
        data = await read_secret(control, ns, GATEWAY_CA_SECRET)
        if data is None:
            raise ClusterError(
                f"Secret {ns}/{GATEWAY_CA_SECRET} does not exist in the control plane",
                hint="run `choreoctl trust` (or the install) to create the gateway CA",
            )
        pem = data.get(CA_KEY) or data.get("tls.crt") or b""
        return pki.load_certs(pem, f"Secret {ns}/{GATEWAY_CA_SECRET}")

    certs: list[x509.Certificate] = await ctx.cached("gateway-ca", fetch)
    return certs


def conditions(obj: Obj | None) -> dict[str, Obj]:
    """The status conditions of an object, by type."""
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return {str(c.get("type")): c for c in conds}


def parse_time(value: str | None) -> dt.datetime | None:
    """An RFC 3339 timestamp as an aware datetime, or None."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def pod_ready(pod: Obj) -> bool:
    """Whether a pod is Running with condition Ready True."""
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )
    return bool(status.get("phase") == "Running" and ready)


def restarts(pod: Obj) -> int:
    """The sum of restart counts of a pod's containers."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses)
