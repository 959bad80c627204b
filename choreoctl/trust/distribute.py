"""Extract the gateway CA's public certificate and write it to every agent namespace.

Only certificates ever leave the control plane: :func:`public_ca_pem` parses what it
is given and re-serialises the certificates alone, so a key that sits next to them in a
Secret cannot slip into a ConfigMap of another cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from choreoctl import pki
from choreoctl.errors import TrustError
from choreoctl.kube.client import KubeClient
from choreoctl.topology.model import Topology
from choreoctl.trust.names import (
    CA_CONFIGMAP,
    CA_KEY,
    GATEWAY_CA_SECRET,
    agent_planes,
)
from choreoctl.trust.objects import ensure_namespace, read_secret, write_configmap


def public_ca_pem(data: Mapping[str, bytes], source: str) -> bytes:
    """The CA certificate(s) of a Secret's ``ca.crt`` (else ``tls.crt``), certificates only."""
    raw = data.get(CA_KEY) or data.get("tls.crt") or b""
    certs = pki.load_certs(raw, source)
    return pki.bundle_pem(certs)


def client_for(clients: Mapping[str, KubeClient], cluster: str) -> KubeClient:
    """The client of ``cluster``; a missing one is a caller's bug worth a clear message."""
    try:
        return clients[cluster]
    except KeyError:
        raise TrustError(
            f"no Kubernetes client for cluster {cluster!r}",
            hint="every cluster the topology names needs a kubeconfig context",
            reference="bad-input",
        ) from None


async def extract_ca(topology: Topology, control: KubeClient) -> bytes:
    """The gateway CA certificate from the control plane (Secret ``cluster-gateway-ca``)."""
    ns = topology.control.namespace
    data = await read_secret(control, ns, GATEWAY_CA_SECRET)
    if data is None:
        raise TrustError(
            f"{control.name}: Secret {ns}/{GATEWAY_CA_SECRET} does not exist",
            hint="install the control plane first (`choreoctl install --only control`), "
            "or check the namespace and context",
        )
    return public_ca_pem(data, f"Secret {ns}/{GATEWAY_CA_SECRET}")


async def distribute_ca(
    topology: Topology, clients: Mapping[str, KubeClient], ca_pem: bytes
) -> list[dict[str, Any]]:
    """Write ``ca_pem`` as ConfigMap ``cluster-gateway-ca`` into every agent namespace.

    Returns one row per plane (plane, cluster, namespace, fingerprints written).
    """
    pem = public_ca_pem({CA_KEY: ca_pem}, "the CA to distribute")
    fps = [pki.fingerprint(c) for c in pki.load_certs(pem)]

    async def one(plane_name: str, cluster: str, namespace: str) -> dict[str, Any]:
        client = client_for(clients, cluster)
        await ensure_namespace(client, namespace)
        await write_configmap(client, namespace, CA_CONFIGMAP, {CA_KEY: pem.decode()})
        return {
            "plane": plane_name,
            "cluster": cluster,
            "namespace": namespace,
            "fingerprints": fps,
        }

    targets = {(p.cluster, p.namespace): p.name for p in agent_planes(topology)}
    return list(await asyncio.gather(*(one(n, c, ns) for (c, ns), n in targets.items())))
