"""What a topology asks of each cluster: requests, storage, LoadBalancers, certificates.

Pure functions of the :class:`~choreoctl.topology.model.Topology`; the capacity,
networking and certificate checks compare these needs with what a cluster offers.
"""

from __future__ import annotations

from dataclasses import dataclass

from choreoctl.checks.quantity import bytes_of, millicores
from choreoctl.topology.model import (
    Plane,
    PlaneKind,
    TLSIssuer,
    Topology,
)


@dataclass(frozen=True)
class Needs:
    """The sum of requests of every component a topology places on one cluster."""

    cpu_m: int
    memory: int
    storage: int
    pods: int
    lines: tuple[str, ...]  # one line per component: plane/component replicas × request


def planes_on(topology: Topology, cluster: str) -> tuple[Plane, ...]:
    """The planes placed on ``cluster``."""
    return tuple(p for p in topology.planes if p.cluster == cluster)


def cluster_needs(topology: Topology, cluster: str) -> Needs:
    """Replicas × requests summed over the components of every plane on ``cluster``."""
    cpu = mem = storage = pods = 0
    lines: list[str] = []
    for plane in planes_on(topology, cluster):
        for comp in plane.components:
            c = millicores(comp.resources.cpu_request) * comp.replicas
            m = bytes_of(comp.resources.memory_request) * comp.replicas
            cpu += c
            mem += m
            pods += comp.replicas
            if comp.storage:
                # storage is per replica; a storage-only component (replicas 0) still has one PVC
                storage += bytes_of(comp.storage) * max(comp.replicas, 1)
            if comp.replicas:
                lines.append(
                    f"{plane.name}/{comp.name}: {comp.replicas} × "
                    f"{comp.resources.cpu_request} CPU, {comp.resources.memory_request}"
                )
    return Needs(cpu, mem, storage, pods, tuple(lines))


def needs_load_balancer(topology: Topology, cluster: str) -> list[str]:
    """Why ``cluster`` needs LoadBalancer addresses (empty list: it does not).

    Data and observability planes publish their endpoints (apps gateway, log
    ingestion) through a LoadBalancer Service in every topology type; the gateway needs
    one only when a plane lives in another cluster than the control plane.
    """
    why: list[str] = []
    control = topology.control
    if control.cluster == cluster and any(p.cluster != cluster for p in topology.planes):
        why.append(f"the cluster gateway (port {topology.gateway.port}) for remote agents")
    for plane in planes_on(topology, cluster):
        if plane.kind in (PlaneKind.data, PlaneKind.observability):
            why.append(f"{plane.kind.value} {plane.name!r} public endpoint")
    return why


def needs_cert_manager(topology: Topology, cluster: str) -> list[str]:
    """Which planes on ``cluster`` need cert-manager (empty: all bring their own)."""
    why: list[str] = []
    for plane in planes_on(topology, cluster):
        if plane.tls.issuer is TLSIssuer.cert_manager:
            why.append(f"{plane.kind.value} {plane.name}: public TLS issued by cert-manager")
        elif topology.trust_issuer is TLSIssuer.cert_manager:
            why.append(
                f"{plane.kind.value} {plane.name}: gateway/agent certificates "
                "(trust.issuer cert-manager)"
            )
    return why


def shared_ip_collisions(topology: Topology, cluster: str) -> list[str]:
    """Ports that planes sharing one LoadBalancer IP on ``cluster`` would both use."""
    users: dict[int, list[str]] = {}
    for plane in planes_on(topology, cluster):
        ports = plane.load_balancer.ports
        for label, port in (("https", ports.https), ("http", ports.http)):
            if port:
                users.setdefault(port, []).append(f"{plane.name} {label}")
    if topology.control.cluster == cluster and needs_load_balancer(topology, cluster):
        users.setdefault(topology.gateway.port, []).append("cluster-gateway wss")
    return [f"port {port}: {', '.join(who)}" for port, who in sorted(users.items()) if len(who) > 1]


def plane_namespaces(topology: Topology, cluster: str) -> list[str]:
    """Namespaces the install writes to on ``cluster`` (planes, and the organization's)."""
    names = [p.namespace for p in planes_on(topology, cluster)]
    if topology.control.cluster == cluster:
        names.append(topology.organization)
    return sorted(set(names))
