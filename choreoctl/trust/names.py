"""Names of the trust objects (the chart ↔ runtime contract) and who holds which.

Kept apart so the issuer, the distributor, status and rotation agree on one spelling.
"""

from __future__ import annotations

import ipaddress

from choreoctl.topology.model import Plane, PlaneKind, Topology

GATEWAY_CA_SECRET = "cluster-gateway-ca"  # the CA pair (key stays in the control plane)
GATEWAY_TLS_SECRET = "cluster-gateway-tls"  # serving certificate + client CA of port 8444
CONTROLLER_TLS_SECRET = "controller-manager-tls"  # the controller's client certificate
AGENT_CA_SECRET = "cluster-agent-ca"  # per plane namespace: the agents' CA pair
AGENT_TLS_SECRET = "cluster-agent-tls"  # per plane namespace: the agent's client certificate
CA_CONFIGMAP = "cluster-gateway-ca"  # per plane namespace: the gateway CA, public only
CA_KEY = "ca.crt"
GATEWAY_SERVICE = "cluster-gateway"


def agent_planes(topology: Topology) -> tuple[Plane, ...]:
    """Every plane that runs a cluster agent: all but the control plane."""
    return tuple(p for p in topology.planes if p.kind is not PlaneKind.control)


def is_ip(value: str) -> bool:
    """Whether ``value`` is an IPv4 or IPv6 address (it then goes to ipAddresses)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def gateway_sans(topology: Topology) -> tuple[list[str], list[str]]:
    """The DNS names and IP addresses the gateway serving certificate must carry.

    Every address an agent may dial: the Service names in the control plane namespace,
    the topology's external host and extra SANs, and loopback (port-forwards, tests).
    The reference's most common failure is a SAN mismatch, so this is derived, not typed.
    """
    ns = topology.control.namespace
    dns = [
        GATEWAY_SERVICE,
        f"{GATEWAY_SERVICE}.{ns}",
        f"{GATEWAY_SERVICE}.{ns}.svc",
        f"{GATEWAY_SERVICE}.{ns}.svc.cluster.local",
    ]
    ips = ["127.0.0.1"]
    for name in (topology.gateway.external_host, *topology.gateway.extra_sans):
        if not name:
            continue
        target = ips if is_ip(name) else dns
        if name not in target:
            target.append(name)
    if "localhost" not in dns:
        dns.append("localhost")
    return dns, ips
