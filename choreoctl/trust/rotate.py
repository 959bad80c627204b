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

With the choreoctl issuer the new CA and certificates are made here. With cert-manager
the Certificates own the Secrets: deleting the CA Secret makes cert-manager issue a new
CA (a new key), and deleting the two leaf Secrets after step 1 makes it re-issue them
from that CA.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from choreoctl import pki
from choreoctl.errors import TrustError, WaitTimeout
from choreoctl.kube.client import KubeClient
from choreoctl.planes.crs import API_VERSION, kind_of, org_namespace
from choreoctl.topology.model import TLSIssuer, Topology
from choreoctl.trust.distribute import client_for, distribute_ca, extract_ca, public_ca_pem
from choreoctl.trust.names import (
    CONTROLLER_TLS_SECRET,
    GATEWAY_CA_SECRET,
    GATEWAY_SERVICE,
    GATEWAY_TLS_SECRET,
    agent_planes,
    gateway_sans,
)
from choreoctl.trust.objects import read_secret, write_secret

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


async def _poll(what: str, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"timed out after {timeout:.0f}s waiting for {what}",
                hint="check that cert-manager runs (`kubectl get certificate -A`); nothing "
                "was removed yet, the old CA is still trusted everywhere",
            )
        await asyncio.sleep(1.0)


async def _cert_manager_new_ca(
    control: KubeClient, ns: str, old_fp: str, *, timeout: float
) -> bytes:
    """Have cert-manager issue a new CA: its Secret deleted, the Certificate re-issues it
    (with a new key, since the old one went with the Secret)."""
    await control.delete("v1", "Secret", GATEWAY_CA_SECRET, ns)
    found: list[bytes] = []

    async def issued() -> bool:
        data = await read_secret(control, ns, GATEWAY_CA_SECRET)
        if not data or not (data.get("ca.crt") or data.get("tls.crt")):
            return False
        pem = public_ca_pem(data, f"Secret {ns}/{GATEWAY_CA_SECRET}")
        if pki.fingerprint(pki.load_certs(pem)[0]) == old_fp:
            return False
        found.append(pem)
        return True

    await _poll(f"cert-manager to re-issue Secret {ns}/{GATEWAY_CA_SECRET}", issued, timeout)
    return found[-1]


async def _cert_manager_reissue_leaves(
    control: KubeClient, ns: str, ca_pem: bytes, *, timeout: float
) -> None:
    """Have cert-manager re-issue the serving and controller certificates from the new CA."""
    ca = pki.load_certs(ca_pem)[0]
    for name in (GATEWAY_TLS_SECRET, CONTROLLER_TLS_SECRET):
        await control.delete("v1", "Secret", name, ns)

    async def reissued() -> bool:
        for name in (GATEWAY_TLS_SECRET, CONTROLLER_TLS_SECRET):
            data = await read_secret(control, ns, name)
            if not data or not data.get("tls.crt"):
                return False
            if not pki.issued_by(pki.load_certs(data["tls.crt"])[0], ca):
                return False
        return True

    await _poll(
        "cert-manager to re-issue the gateway and controller certificates", reissued, timeout
    )


async def _choreoctl_issue_leaves(
    topology: Topology, control: KubeClient, new_ca: pki.CertKey
) -> None:
    ns = topology.control.namespace
    dns, ips = gateway_sans(topology)
    serving = pki.issue_cert(new_ca, GATEWAY_SERVICE, dns_names=dns, ip_addresses=ips, server=True)
    controller = pki.issue_cert(new_ca, "controller-manager", client=True)
    ca_only = {"tls.crt": new_ca.cert_pem, "tls.key": new_ca.key_pem, "ca.crt": new_ca.cert_pem}
    await write_secret(control, ns, GATEWAY_CA_SECRET, ca_only)
    for name, pair in ((GATEWAY_TLS_SECRET, serving), (CONTROLLER_TLS_SECRET, controller)):
        data = {"tls.crt": pair.cert_pem, "tls.key": pair.key_pem, "ca.crt": new_ca.cert_pem}
        await write_secret(control, ns, name, data)


async def rotate_gateway_ca(
    topology: Topology,
    clients: Mapping[str, KubeClient],
    *,
    timeout: float = 300.0,
    propagation: float = 90.0,
) -> dict[str, Any]:
    """Replace the gateway CA as described in the module docstring; a summary comes back.

    With the choreoctl issuer the new CA is made here; with cert-manager its Secrets are
    deleted in the right order so cert-manager issues the new CA and then the leaves.
    """
    if topology.trust_issuer not in (TLSIssuer.choreoctl, TLSIssuer.cert_manager):
        raise TrustError(
            f"trust rotate cannot rotate a CA of issuer {topology.trust_issuer.value}",
            hint="set trust.issuer to cert-manager or choreoctl",
        )
    control = client_for(clients, topology.control.cluster)
    ns = topology.control.namespace
    steps: list[str] = []
    old_pem = await extract_ca(topology, control)
    old_fp = pki.fingerprint(pki.load_certs(old_pem)[0])
    new_ca: pki.CertKey | None = None
    if topology.trust_issuer is TLSIssuer.choreoctl:
        new_ca = pki.make_ca("openchoreo-cluster-gateway-ca")
        new_pem = new_ca.cert_pem
    else:
        new_pem = await _cert_manager_new_ca(control, ns, old_fp, timeout=timeout)
        steps.append("cert-manager issued a new gateway CA")
    new_fp = pki.fingerprint(pki.load_certs(new_pem)[0])
    await distribute_ca(topology, clients, old_pem + new_pem)
    steps.append("distributed old + new CA to every plane")
    await asyncio.sleep(propagation)

    if new_ca is not None:
        await _choreoctl_issue_leaves(topology, control, new_ca)
    else:
        await _cert_manager_reissue_leaves(control, ns, new_pem, timeout=timeout)
    steps.append("re-issued the gateway serving and controller certificates from the new CA")

    since = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    restarted = [d for d in RESTARTED if await restart_deployment(control, ns, d, stamp)]
    steps.append(f"restarted {', '.join(restarted) or 'nothing (no Deployments found)'}")

    reconnected = await wait_reconnected(topology, control, since, timeout=timeout)
    steps.append(f"{len(reconnected)} agent plane(s) reconnected on the new chain")

    await distribute_ca(topology, clients, new_pem)
    steps.append("removed the old CA from every plane")
    return {"old": old_fp, "new": new_fp, "steps": steps, "reconnected": reconnected}
