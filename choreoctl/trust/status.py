"""Who holds which CA: the gateway's CA and certificates, and each plane's copy and agent.

``trust status`` answers the questions a broken tunnel raises: does every plane hold
the gateway CA the gateway serves with, does the serving certificate carry the name
the agents dial, and does each plane CR trust the CA that issued its agent's
certificate. Everything is read-only; results are plain data for ``-o json``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from choreoctl import pki
from choreoctl.errors import ChoreoError, TrustError
from choreoctl.kube.client import KubeClient
from choreoctl.planes.crs import API_VERSION, kind_of, org_namespace
from choreoctl.topology.model import Plane, Topology
from choreoctl.trust.distribute import client_for
from choreoctl.trust.names import (
    AGENT_TLS_SECRET,
    CA_CONFIGMAP,
    CA_KEY,
    GATEWAY_CA_SECRET,
    GATEWAY_TLS_SECRET,
    agent_planes,
    gateway_sans,
)
from choreoctl.trust.objects import read_configmap, read_secret

if TYPE_CHECKING:
    from cryptography import x509

EXPIRY_WARNING = dt.timedelta(days=30)


def cert_info(cert: x509.Certificate) -> dict[str, Any]:
    """Subject, fingerprint and expiry of one certificate, as plain data."""
    end = pki.not_after(cert)
    left = end - dt.datetime.now(dt.UTC)
    return {
        "subject": cert.subject.rfc4514_string(),
        "fingerprint": pki.fingerprint(cert),
        "notAfter": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "daysLeft": left.days,
    }


def _expiry_problem(what: str, cert: x509.Certificate) -> str | None:
    left = pki.not_after(cert) - dt.datetime.now(dt.UTC)
    if left.total_seconds() <= 0:
        return f"{what} has expired"
    if left < EXPIRY_WARNING:
        return f"{what} expires in {left.days} day(s)"
    return None


def _parse(raw: bytes | str | None, source: str) -> list[x509.Certificate]:
    if not raw:
        return []
    try:
        return pki.load_certs(raw, source)
    except TrustError:
        return []


async def gateway_trust(topology: Topology, control: KubeClient) -> dict[str, Any]:
    """The gateway's CA, serving certificate and the names it must carry."""
    ns = topology.control.namespace
    ca_data, tls_data = await asyncio.gather(
        read_secret(control, ns, GATEWAY_CA_SECRET), read_secret(control, ns, GATEWAY_TLS_SECRET)
    )
    problems: list[str] = []
    cas = _parse((ca_data or {}).get(CA_KEY) or (ca_data or {}).get("tls.crt"), "gateway CA")
    if not cas:
        problems.append(f"Secret {ns}/{GATEWAY_CA_SECRET} is missing or holds no certificate")
    serving = _parse((tls_data or {}).get("tls.crt"), "gateway serving certificate")
    client_cas = _parse((tls_data or {}).get(CA_KEY), "gateway client CA")
    out: dict[str, Any] = {
        "cluster": topology.control.cluster,
        "namespace": ns,
        "ca": [cert_info(c) for c in cas],
        "serving": None,
        "clientCA": [pki.fingerprint(c) for c in client_cas],
    }
    for c in cas:
        if msg := _expiry_problem("the gateway CA", c):
            problems.append(msg)
    if not serving:
        problems.append(f"Secret {ns}/{GATEWAY_TLS_SECRET} is missing or holds no certificate")
    else:
        leaf = serving[0]
        dns, ips = gateway_sans(topology)
        missing = [n for n in dns + ips if not pki.hostname_matches(leaf, n)]
        issued = any(pki.issued_by(leaf, c) for c in cas)
        out["serving"] = {**cert_info(leaf), "names": pki.cert_names(leaf), "missingNames": missing}
        out["serving"]["issuedByCA"] = issued
        if missing:
            problems.append("the gateway serving certificate lacks " + ", ".join(missing))
        if cas and not issued:
            problems.append("the gateway serving certificate was not issued by the gateway CA")
        if msg := _expiry_problem("the gateway serving certificate", leaf):
            problems.append(msg)
    out["problems"] = problems
    return out


async def plane_trust(
    topology: Topology,
    plane: Plane,
    client: KubeClient,
    control: KubeClient,
    gateway_fps: set[str],
) -> dict[str, Any]:
    """One agent plane: its copy of the gateway CA, its agent certificate, its CR's CA."""
    problems: list[str] = []
    row: dict[str, Any] = {
        "plane": plane.name,
        "kind": kind_of(plane),
        "cluster": plane.cluster,
        "namespace": plane.namespace,
        "gatewayCA": [],
        "gatewayCAMatches": False,
        "agentCert": None,
        "registeredCA": [],
    }
    try:
        cm, agent, cr = await asyncio.gather(
            read_configmap(client, plane.namespace, CA_CONFIGMAP),
            read_secret(client, plane.namespace, AGENT_TLS_SECRET),
            control.get(API_VERSION, kind_of(plane), plane.name, org_namespace(topology)),
        )
    except ChoreoError as e:
        row["problems"] = [e.message]
        return row
    held = _parse((cm or {}).get(CA_KEY), "ConfigMap cluster-gateway-ca")
    row["gatewayCA"] = [cert_info(c) for c in held]
    held_fps = {pki.fingerprint(c) for c in held}
    row["gatewayCAMatches"] = bool(gateway_fps) and gateway_fps <= held_fps
    if cm is None:
        problems.append(f"ConfigMap {plane.namespace}/{CA_CONFIGMAP} is missing")
    elif not row["gatewayCAMatches"]:
        problems.append("holds a different gateway CA than the control plane serves with")
    agent_leaf = _parse((agent or {}).get("tls.crt"), "agent certificate")
    agent_cas = _parse((agent or {}).get(CA_KEY), "agent CA")
    if agent_leaf:
        row["agentCert"] = cert_info(agent_leaf[0])
        if msg := _expiry_problem("the agent certificate", agent_leaf[0]):
            problems.append(msg)
    else:
        problems.append(f"Secret {plane.namespace}/{AGENT_TLS_SECRET} is missing")
    value = ((cr or {}).get("spec", {}).get("clusterAgent", {}).get("clientCA") or {}).get("value")
    registered = _parse(value, "clientCA")
    row["registeredCA"] = [pki.fingerprint(c) for c in registered]
    if cr is None:
        problems.append(f"{kind_of(plane)} {plane.name!r} is not registered")
    elif agent_leaf and registered:
        try:
            pki.verify_client_cert(agent_leaf[0], registered)
        except TrustError as e:
            problems.append(f"the plane CR does not accept the agent certificate: {e.message}")
    elif agent_cas and not registered:
        problems.append("the plane CR has no inline clientCA")
    row["problems"] = problems
    return row


async def trust_status(topology: Topology, clients: Mapping[str, KubeClient]) -> dict[str, Any]:
    """The whole picture: ``{"gateway": {...}, "planes": [...], "ok": bool}``."""
    control = client_for(clients, topology.control.cluster)
    gateway = await gateway_trust(topology, control)
    fps = {c["fingerprint"] for c in gateway["ca"]}
    planes = await asyncio.gather(
        *(
            plane_trust(topology, p, client_for(clients, p.cluster), control, fps)
            for p in agent_planes(topology)
        )
    )
    ok = not gateway["problems"] and not any(p["problems"] for p in planes)
    return {"ok": ok, "gateway": gateway, "planes": list(planes)}
