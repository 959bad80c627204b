"""The install's trust step: make sure the gateway CA exists, then hand its public half out.

Two issuers, one outcome. With cert-manager (the default) the control plane chart
declares the CA and certificates and this step waits for the CA to be issued. With
``trust.issuer: choreoctl`` (no cert-manager: tests, air-gapped labs) this step issues
the very same Secrets itself with :mod:`choreoctl.pki`, re-using what exists while it
is still valid. Either way it returns the CA certificate (never the key) and writes it
as ConfigMap ``cluster-gateway-ca`` into every agent's namespace.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from choreoctl import pki
from choreoctl.errors import ApiError, TrustError, WaitTimeout
from choreoctl.kube.client import KubeClient
from choreoctl.topology.model import Plane, TLSIssuer, Topology
from choreoctl.trust.distribute import client_for, distribute_ca, public_ca_pem
from choreoctl.trust.names import (
    AGENT_CA_SECRET,
    AGENT_TLS_SECRET,
    CONTROLLER_TLS_SECRET,
    GATEWAY_CA_SECRET,
    GATEWAY_SERVICE,
    GATEWAY_TLS_SECRET,
    agent_planes,
    gateway_sans,
)
from choreoctl.trust.objects import ensure_namespace, read_secret, write_secret

if TYPE_CHECKING:
    from cryptography import x509

# Re-issue a certificate that expires sooner than this (cert-manager's default renewBefore
# is a third of the lifetime; a fixed month is simpler to reason about for 1-year leaves).
RENEW_BEFORE = dt.timedelta(days=30)


def _fresh(cert: x509.Certificate) -> bool:
    now = dt.datetime.now(dt.UTC)
    return cert.not_valid_before_utc <= now and pki.not_after(cert) - now > RENEW_BEFORE


def _valid_ca(data: Mapping[str, bytes] | None) -> pki.CertKey | None:
    """The CA pair in a Secret, when it is a CA with its key and not about to expire."""
    if not data or b"PRIVATE KEY" not in data.get("tls.key", b""):
        return None
    try:
        ca = pki.CertKey(data["tls.crt"], data["tls.key"])
        cert = ca.cert
    except (KeyError, TrustError):
        return None
    return ca if _fresh(cert) else None


def _valid_leaf(
    data: Mapping[str, bytes] | None,
    ca: x509.Certificate,
    *,
    names: tuple[list[str], list[str]] | None = None,
    common_name: str | None = None,
) -> bool:
    """Whether a Secret holds a fresh leaf issued by ``ca`` with the wanted identity."""
    if not data or "tls.key" not in data or "tls.crt" not in data:
        return False
    try:
        leaf = pki.load_certs(data["tls.crt"])[0]
        bundle = pki.load_certs(data.get("ca.crt", b""))
    except TrustError:
        return False
    if not pki.issued_by(leaf, ca) or not _fresh(leaf):
        return False
    if pki.fingerprint(ca) not in {pki.fingerprint(c) for c in bundle}:
        return False
    if names is not None:
        have = {n.lower() for n in pki.cert_names(leaf)}
        if not {n.lower() for n in names[0] + names[1]} <= have:
            return False
    if common_name is not None:
        from cryptography.x509.oid import NameOID

        cns = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if cns != [common_name]:
            return False
    return True


async def _ensure_ca(
    client: KubeClient, namespace: str, name: str, common_name: str
) -> pki.CertKey:
    ca = _valid_ca(await read_secret(client, namespace, name))
    if ca is None:
        ca = pki.make_ca(common_name)
        await write_secret(
            client,
            namespace,
            name,
            {"tls.crt": ca.cert_pem, "tls.key": ca.key_pem, "ca.crt": ca.cert_pem},
        )
    return ca


async def _ensure_leaf(
    client: KubeClient,
    namespace: str,
    name: str,
    ca: pki.CertKey,
    common_name: str,
    *,
    server: bool = False,
    client_auth: bool = False,
    names: tuple[list[str], list[str]] | None = None,
) -> None:
    existing = await read_secret(client, namespace, name)
    if _valid_leaf(existing, ca.cert, names=names, common_name=common_name):
        return
    leaf = pki.issue_cert(
        ca,
        common_name,
        dns_names=names[0] if names else (),
        ip_addresses=names[1] if names else (),
        server=server,
        client=client_auth,
    )
    await write_secret(
        client,
        namespace,
        name,
        {"tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem, "ca.crt": ca.cert_pem},
    )


async def issue_gateway_certs(topology: Topology, control: KubeClient) -> pki.CertKey:
    """choreoctl issuer: the gateway CA, serving and controller certificates, as Secrets.

    Existing valid Secrets are kept, so a re-run changes nothing; the CA key stays in
    the control plane namespace.
    """
    ns = topology.control.namespace
    await ensure_namespace(control, ns)
    ca = await _ensure_ca(control, ns, GATEWAY_CA_SECRET, "openchoreo-cluster-gateway-ca")
    await _ensure_leaf(
        control,
        ns,
        GATEWAY_TLS_SECRET,
        ca,
        GATEWAY_SERVICE,
        server=True,
        names=gateway_sans(topology),
    )
    await _ensure_leaf(
        control, ns, CONTROLLER_TLS_SECRET, ca, "controller-manager", client_auth=True
    )
    return ca


async def issue_agent_certs(plane: Plane, client: KubeClient) -> None:
    """choreoctl issuer: one plane's agent CA and agent client certificate (CN = planeID)."""
    await ensure_namespace(client, plane.namespace)
    ca = await _ensure_ca(
        client, plane.namespace, AGENT_CA_SECRET, f"{plane.effective_plane_id}-agent-ca"
    )
    await _ensure_leaf(
        client, plane.namespace, AGENT_TLS_SECRET, ca, plane.effective_plane_id, client_auth=True
    )


def _ready(cert_obj: Mapping[str, object] | None) -> tuple[bool, str]:
    if cert_obj is None:
        return False, "the Certificate does not exist yet"
    status = cert_obj.get("status")
    conditions = status.get("conditions", []) if isinstance(status, dict) else []
    for cond in conditions:
        if cond.get("type") == "Ready":
            ok = cond.get("status") == "True"
            return (
                ok,
                f"Ready={cond.get('status')} ({cond.get('reason', '')}: {cond.get('message', '')})",
            )
    return False, "the Certificate has no Ready condition yet"


async def wait_cert_manager_ca(control: KubeClient, namespace: str, *, timeout: float) -> bytes:
    """Wait until cert-manager's Certificate ``cluster-gateway-ca`` is Ready and its Secret
    holds a CA certificate; return that certificate's PEM."""
    deadline = time.monotonic() + timeout
    last = "nothing yet"
    while True:
        try:
            cert = await control.get(
                "cert-manager.io/v1", "Certificate", GATEWAY_CA_SECRET, namespace
            )
            ready, last = _ready(cert)
        except ApiError as e:  # the kind is missing until cert-manager's CRDs are in
            ready, last = False, e.message
        if ready:
            data = await read_secret(control, namespace, GATEWAY_CA_SECRET)
            if data and (data.get("ca.crt") or data.get("tls.crt")):
                return public_ca_pem(data, f"Secret {namespace}/{GATEWAY_CA_SECRET}")
            last = f"Certificate Ready but Secret {namespace}/{GATEWAY_CA_SECRET} has no ca.crt yet"
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"{control.name}: timed out after {timeout:.0f}s waiting for cert-manager "
                f"Certificate {namespace}/{GATEWAY_CA_SECRET} to be Ready; last seen: {last}",
                hint="check cert-manager is installed and running (`kubectl get certificate "
                f"-n {namespace}`), or use `trust.issuer: choreoctl` without cert-manager",
            )
        await asyncio.sleep(1.0)


async def ensure_trust(
    topology: Topology, clients: Mapping[str, KubeClient], *, timeout: float
) -> bytes:
    """Make the gateway CA exist, distribute its certificate, return the CA PEM.

    The returned bytes hold only certificates (never a key). With the choreoctl issuer
    every agent namespace also gets its ``cluster-agent-tls`` Secret here.
    """
    control = topology.control
    control_client = client_for(clients, control.cluster)
    if topology.trust_issuer is TLSIssuer.choreoctl:
        ca = await issue_gateway_certs(topology, control_client)
        ca_pem = public_ca_pem({"ca.crt": ca.cert_pem}, "the gateway CA")
        await asyncio.gather(
            *(issue_agent_certs(p, client_for(clients, p.cluster)) for p in agent_planes(topology))
        )
    else:
        ca_pem = await wait_cert_manager_ca(control_client, control.namespace, timeout=timeout)
    await distribute_ca(topology, clients, ca_pem)
    return ca_pem


__all__ = [
    "RENEW_BEFORE",
    "ensure_trust",
    "gateway_sans",
    "issue_agent_certs",
    "issue_gateway_certs",
    "wait_cert_manager_ca",
]
