"""Rotate the gateway CA without cutting any agent off for longer than one reconnect.

The order is what makes it safe:

1. a new CA is made; every agent namespace gets the bundle *old + new* in ConfigMap
   ``cluster-gateway-ca`` (agents re-read it at each dial, so they accept either), and
   rotation waits ``propagation`` seconds: the kubelet refreshes mounted ConfigMaps
   only every minute or so, and an agent must hold the bundle before step 2;
2. the gateway serving certificate and the controller's client certificate are
   re-issued from the new CA (the CA Secret now holds the new pair) and the gateway
   and controller Deployments are restarted once, like ``kubectl rollout restart``;
   every agent reconnects a single time and verifies the new chain through the bundle;
3. each plane CR must report its agent connected again after the restart;
4. only then is the old CA dropped from every ConfigMap.

Used for the choreoctl issuer; with cert-manager the Certificates own these Secrets and
rotation is cert-manager's (the error says how).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

from choreoctl import pki
from choreoctl.errors import TrustError, WaitTimeout
from choreoctl.kube.client import KubeClient
from choreoctl.planes.crs import API_VERSION, kind_of, org_namespace
from choreoctl.topology.model import TLSIssuer, Topology
from choreoctl.trust.distribute import client_for, distribute_ca, extract_ca
from choreoctl.trust.names import (
    CONTROLLER_TLS_SECRET,
    GATEWAY_CA_SECRET,
    GATEWAY_SERVICE,
    GATEWAY_TLS_SECRET,
    agent_planes,
    gateway_sans,
)
from choreoctl.trust.objects import write_secret

RESTART_ANNOTATION = "choreoctl.dev/restartedAt"
RESTARTED = ("cluster-gateway", "controller-manager")


def _parse_time(value: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


async def restart_deployment(client: KubeClient, namespace: str, name: str, when: str) -> bool:
    """Roll a Deployment's pods by stamping its template; False when it does not exist."""
    if await client.get("apps/v1", "Deployment", name, namespace) is None:
        return False
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: when}}}}}
    await client.patch("apps/v1", "Deployment", name, namespace, patch)
    return True


async def wait_reconnected(
    topology: Topology, control: KubeClient, since: dt.datetime, *, timeout: float
) -> dict[str, str]:
    """Wait until every plane CR reports its agent connected after ``since``.

    Returns plane → lastConnectedTime. The timestamps come from the gateway's own
    record of the connection, so a stale "connected" from before the restart does not
    count.
    """
    deadline = time.monotonic() + timeout
    ns = org_namespace(topology)
    pending = {(kind_of(p), p.name) for p in agent_planes(topology)}
    seen: dict[str, str] = {}
    last: dict[str, str] = {}
    while pending:
        for kind, name in sorted(pending):
            obj = await control.get(API_VERSION, kind, name, ns)
            conn = ((obj or {}).get("status") or {}).get("agentConnection") or {}
            stamp = _parse_time(str(conn.get("lastConnectedTime") or ""))
            last[f"{kind}/{name}"] = f"connected={conn.get('connected')} at {stamp}"
            if conn.get("connected") and stamp is not None and stamp >= since:
                seen[f"{kind}/{name}"] = str(conn["lastConnectedTime"])
                pending.discard((kind, name))
        if not pending:
            break
        if time.monotonic() >= deadline:
            waiting = ", ".join(f"{k}/{n} ({last.get(f'{k}/{n}')})" for k, n in sorted(pending))
            raise WaitTimeout(
                f"agents did not reconnect on the new gateway certificate within "
                f"{timeout:.0f}s: {waiting}",
                hint="the old CA is still trusted (nothing is broken); check the agents' "
                "logs, then run `choreoctl trust rotate` again",
            )
        await asyncio.sleep(1.0)
    return seen


async def rotate_gateway_ca(
    topology: Topology,
    clients: Mapping[str, KubeClient],
    *,
    timeout: float = 300.0,
    propagation: float = 90.0,
) -> dict[str, Any]:
    """Replace the gateway CA as described in the module docstring; a summary comes back."""
    if topology.trust_issuer is not TLSIssuer.choreoctl:
        raise TrustError(
            "trust rotate issues certificates itself, but this topology's issuer is "
            f"{topology.trust_issuer.value}",
            hint="with cert-manager, renew Certificate cluster-gateway-ca (e.g. delete its "
            "Secret), then `choreoctl trust distribute`; or set trust.issuer: choreoctl",
        )
    control = client_for(clients, topology.control.cluster)
    ns = topology.control.namespace
    steps: list[str] = []
    old_pem = await extract_ca(topology, control)
    old_fp = pki.fingerprint(pki.load_certs(old_pem)[0])
    new_ca = pki.make_ca("openchoreo-cluster-gateway-ca")
    new_fp = pki.fingerprint(new_ca.cert)
    bundle = old_pem + new_ca.cert_pem
    await distribute_ca(topology, clients, bundle)
    steps.append("distributed old + new CA to every plane")
    await asyncio.sleep(propagation)

    dns, ips = gateway_sans(topology)
    serving = pki.issue_cert(new_ca, GATEWAY_SERVICE, dns_names=dns, ip_addresses=ips, server=True)
    controller = pki.issue_cert(new_ca, "controller-manager", client=True)
    ca_only = {"tls.crt": new_ca.cert_pem, "tls.key": new_ca.key_pem, "ca.crt": new_ca.cert_pem}
    await write_secret(control, ns, GATEWAY_CA_SECRET, ca_only)
    for name, pair in ((GATEWAY_TLS_SECRET, serving), (CONTROLLER_TLS_SECRET, controller)):
        data = {"tls.crt": pair.cert_pem, "tls.key": pair.key_pem, "ca.crt": new_ca.cert_pem}
        await write_secret(control, ns, name, data)
    steps.append("re-issued the gateway serving and controller certificates from the new CA")

    since = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    restarted = [d for d in RESTARTED if await restart_deployment(control, ns, d, stamp)]
    steps.append(f"restarted {', '.join(restarted) or 'nothing (no Deployments found)'}")

    reconnected = await wait_reconnected(topology, control, since, timeout=timeout)
    steps.append(f"{len(reconnected)} agent plane(s) reconnected on the new chain")

    await distribute_ca(topology, clients, new_ca.cert_pem)
    steps.append("removed the old CA from every plane")
    return {"old": old_fp, "new": new_fp, "steps": steps, "reconnected": reconnected}
