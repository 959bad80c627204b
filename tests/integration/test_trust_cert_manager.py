"""The default trust path: cert-manager issues the gateway CA, choreoctl waits and distributes.

``alpha`` of the session runs a real cert-manager controller; the Issuer/Certificate
chain here is the one the control plane chart renders for the gateway CA.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from choreoctl import pki
from choreoctl.errors import WaitTimeout
from choreoctl.topology.model import TLSIssuer
from choreoctl.trust.gateway_ca import ensure_trust
from tests.integration.test_trust_issuer import lab  # noqa: F401

pytestmark = pytest.mark.cluster


def _chain(ns: str) -> dict[str, Any]:
    cm = "cert-manager.io/v1"
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": cm,
                "kind": "Issuer",
                "metadata": {"name": "cluster-gateway-selfsigned", "namespace": ns},
                "spec": {"selfSigned": {}},
            },
            {
                "apiVersion": cm,
                "kind": "Certificate",
                "metadata": {"name": "cluster-gateway-ca", "namespace": ns},
                "spec": {
                    "isCA": True,
                    "commonName": "cluster-gateway-ca",
                    "secretName": "cluster-gateway-ca",
                    "privateKey": {"algorithm": "ECDSA", "size": 256},
                    "issuerRef": {"name": "cluster-gateway-selfsigned", "kind": "Issuer"},
                },
            },
        ],
    }


async def test_waits_for_cert_manager_then_distributes_the_public_ca(lab, clusters: Any) -> None:  # noqa: F811
    topo, clients = lab
    topo = dataclasses.replace(topo, trust_issuer=TLSIssuer.cert_manager)
    alpha = clusters["alpha"]
    ns = topo.control.namespace
    alpha.kubectl("create", "namespace", ns)
    with pytest.raises(WaitTimeout) as err:
        await ensure_trust(topo, clients, timeout=2)
    assert "Certificate" in err.value.message and "cluster-gateway-ca" in err.value.message
    alpha.kubectl("apply", "-f", "-", input=json.dumps(_chain(ns)))
    ca_pem = await ensure_trust(topo, clients, timeout=90)
    assert b"PRIVATE KEY" not in ca_pem
    cert = pki.load_certs(ca_pem)[0]
    assert cert.subject.rfc4514_string() == "CN=cluster-gateway-ca"
    for plane in topo.planes[1:]:
        cm = await clients["beta"].get("v1", "ConfigMap", "cluster-gateway-ca", plane.namespace)
        assert cm is not None and cm["data"]["ca.crt"].encode() == ca_pem
    # choreoctl issued nothing itself on this path
    assert await clients["alpha"].get("v1", "Secret", "cluster-gateway-tls", ns) is None
