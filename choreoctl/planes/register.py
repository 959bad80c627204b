"""Register a plane with the control plane: read the agent CA, write the CR, wait for the agent.

The gateway accepts an agent only when its client certificate chains to the plane CR's
``spec.clusterAgent.clientCA``; registration copies that CA from the plane cluster
(``ca.crt`` of Secret ``cluster-agent-tls`` — the issuing CA, not the leaf in
``tls.crt``, so routine agent certificate renewals need no re-registration), validates
references before it writes anything, and waits until the gateway reports the agent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from choreoctl import pki
from choreoctl.errors import (
    ApiError,
    ClusterError,
    InputError,
    Problem,
    TrustError,
    WaitTimeout,
)
from choreoctl.kube.client import KubeClient, Obj
from choreoctl.planes.crs import (
    API_VERSION,
    KINDS,
    LABELS,
    kind_of,
    org_namespace,
    plane_cr,
    public_virtual_host,
    validate_names,
)
from choreoctl.topology.model import Plane, PlaneKind, Topology
from choreoctl.trust.distribute import client_for
from choreoctl.trust.names import AGENT_TLS_SECRET
from choreoctl.trust.objects import ensure_namespace, read_secret


@dataclass(frozen=True)
class GatewayAccess:
    """How to reach the gateway's internal API (port 8444, client certificate required)."""

    url: str  # e.g. https://127.0.0.1:8444
    client_cert: str
    client_key: str
    server_ca: str


async def ensure_organization(topology: Topology, control: KubeClient) -> str:
    """The Organization CR and its namespace; returns the namespace."""
    ns = org_namespace(topology)
    await ensure_namespace(control, ns)
    org: Obj = {
        "apiVersion": API_VERSION,
        "kind": "Organization",
        "metadata": {"name": topology.organization, "labels": dict(LABELS)},
        "spec": {"displayName": topology.organization},
    }
    await control.apply(org)
    return ns


async def read_agent_ca(plane: Plane, client: KubeClient, *, timeout: float) -> str:
    """Wait for Secret ``cluster-agent-tls`` in the plane namespace; return its ``ca.crt``."""
    deadline = time.monotonic() + timeout
    where = f"{client.name}: Secret {plane.namespace}/{AGENT_TLS_SECRET}"
    last = "the Secret does not exist yet"
    while True:
        data = await read_secret(client, plane.namespace, AGENT_TLS_SECRET)
        if data is not None:
            raw = data.get("ca.crt", b"")
            if raw:
                certs = pki.load_certs(raw, f"{where} ca.crt")
                return pki.bundle_pem(certs).decode()
            last = "the Secret has no ca.crt yet"
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"timed out after {timeout:.0f}s waiting for the agent certificate ({where}); "
                f"last seen: {last}",
                hint="is the plane installed and is its issuer (cert-manager) running? "
                f"`kubectl get certificate -n {plane.namespace}` shows why it is not issued",
            )
        await asyncio.sleep(1.0)


async def validate_registration(topology: Topology, plane: Plane, control: KubeClient) -> None:
    """Refuse a registration that would write a wrong CR; all problems in one error."""
    problems = validate_names(plane)
    ns = org_namespace(topology)
    if plane.observability_plane and plane.kind in (PlaneKind.data, PlaneKind.build):
        ref = await control.get(
            API_VERSION, KINDS[PlaneKind.observability], plane.observability_plane, ns
        )
        if ref is None:
            problems.append(
                Problem(
                    f"ObservabilityPlane {plane.observability_plane!r} does not exist in "
                    f"namespace {ns}",
                    path="observabilityPlaneRef",
                    hint="register the observability plane first, or drop the reference",
                )
            )
    if plane.kind is PlaneKind.data and public_virtual_host(plane):
        host = public_virtual_host(plane)
        for dp in await control.list(API_VERSION, KINDS[PlaneKind.data], ns):
            other = dp.get("metadata", {}).get("name")
            taken = dp.get("spec", {}).get("gateway", {}).get("publicVirtualHost")
            if other != plane.name and taken == host:
                problems.append(
                    Problem(
                        f"publicVirtualHost {host!r} is already used by DataPlane {other!r}",
                        path="publicVirtualHost",
                        hint="every data plane (region) needs its own public host",
                    )
                )
    if problems:
        raise InputError(
            f"cannot register {kind_of(plane)} {plane.name!r}: {len(problems)} problem(s)",
            hint="fix the flags or the topology and run the command again",
            problems=tuple(problems),
        )


async def notify_gateway(access: GatewayAccess, plane: Plane, namespace: str) -> bool:
    """Tell the gateway to reload this plane's CR now; False when it cannot be reached.

    The gateway also watches plane CRs, so a missed notification only costs latency.
    """
    import json
    import ssl
    from urllib.parse import urlsplit

    from choreoctl.kube.http1 import Http1Client

    try:
        ctx = ssl.create_default_context(cafile=access.server_ca)
        ctx.load_cert_chain(access.client_cert, access.client_key)
    except (OSError, ssl.SSLError) as e:
        raise TrustError(
            f"cannot load the gateway client files ({access.client_cert}, "
            f"{access.client_key}, {access.server_ca}): {e}",
            hint="pass PEM files whose key matches the certificate (controller-manager-tls)",
        ) from e
    body = {
        "planeType": plane.kind.plane_type,
        "planeID": plane.effective_plane_id,
        "event": "updated",
        "name": plane.name,
        "namespace": namespace,
    }
    url = urlsplit(access.url)
    gateway = Http1Client(f"{url.scheme}://{url.netloc}", ctx, 5.0, "the cluster gateway")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    target = f"{url.path.rstrip('/')}/api/v1/planes/notify"
    try:
        status, _, _ = await gateway.exchange(
            "POST", target, headers, json.dumps(body).encode(), 5.0
        )
    except ClusterError:
        return False
    finally:
        await gateway.aclose()
    return status < 300


async def wait_agent_connected(
    control: KubeClient, kind: str, name: str, namespace: str, *, timeout: float
) -> Obj:
    """Poll the plane CR until ``status.agentConnection.connected``; return that status."""
    deadline = time.monotonic() + timeout
    last = "no status yet"
    while True:
        obj = await control.get(API_VERSION, kind, name, namespace)
        conn = ((obj or {}).get("status") or {}).get("agentConnection") or {}
        if conn.get("connected"):
            return dict(conn)
        if conn:
            last = f"connected={conn.get('connected')} message={conn.get('message', '')!r}"
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"{control.name}: timed out after {timeout:.0f}s waiting for the agent of "
                f"{kind} {namespace}/{name} to connect; last seen: {last}",
                hint="check the agent's logs and `choreoctl trust status`; the agent must "
                "reach the gateway address and trust its CA",
            )
        await asyncio.sleep(1.0)


async def register_plane(
    topology: Topology,
    plane: Plane,
    clients: Mapping[str, KubeClient],
    *,
    wait_connected: bool = True,
    timeout: float = 120.0,
    notify: GatewayAccess | None = None,
    force_conflicts: bool = False,
) -> dict[str, Any]:
    """Create or update the CR of ``plane`` and (optionally) wait for its agent.

    Returns a summary: kind, name, namespace, planeID, cluster, the client CA
    fingerprints, whether the gateway was notified and the agent connection.
    """
    if plane.kind not in KINDS:
        raise InputError(f"the {plane.kind.value} has no plane CR to register")
    control = client_for(clients, topology.control.cluster)
    plane_client = client_for(clients, plane.cluster)
    deadline = time.monotonic() + timeout
    ns = await ensure_organization(topology, control)
    await validate_registration(topology, plane, control)
    client_ca = await read_agent_ca(plane, plane_client, timeout=timeout)
    obj = plane_cr(topology, plane, client_ca)
    try:
        await control.apply(obj, force=force_conflicts)
    except ApiError as e:
        if e.status == 422:
            raise InputError(
                f"the API server rejected {obj['kind']} {plane.name!r}: {e.message}",
                hint="fix the value named in the message",
            ) from e
        raise
    notified = await notify_gateway(notify, plane, ns) if notify else False
    result: dict[str, Any] = {
        "kind": obj["kind"],
        "name": plane.name,
        "namespace": ns,
        "planeID": plane.effective_plane_id,
        "cluster": plane.cluster,
        "clientCA": [pki.fingerprint(c) for c in pki.load_certs(client_ca)],
        "notified": notified,
        "agentConnection": None,
    }
    if wait_connected:
        remaining = max(deadline - time.monotonic(), 1.0)
        result["agentConnection"] = await wait_agent_connected(
            control, obj["kind"], plane.name, ns, timeout=remaining
        )
    return result


__all__ = [
    "GatewayAccess",
    "ensure_organization",
    "notify_gateway",
    "read_agent_ca",
    "register_plane",
    "validate_registration",
    "wait_agent_connected",
]
