"""Topology → template values: the one place where charts get their numbers and names.

Templates see plain dicts (never model objects), so every name a chart uses is decided
here and can be unit-tested without jinja. Component figures come from
``Plane.components`` falling back per component to the seed's defaults.
"""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path
from typing import Any

from choreoctl.errors import Problem, RenderError
from choreoctl.render.images import resolve_images
from choreoctl.topology import defaults
from choreoctl.topology.model import (
    Component,
    LoadBalancerMode,
    Plane,
    PlaneKind,
    TLSIssuer,
    Topology,
)

PART_OF = {"app.kubernetes.io/part-of": "openchoreo", "app.kubernetes.io/managed-by": "choreoctl"}
HEARTBEAT_INTERVAL = "30s"
HEARTBEAT_TIMEOUT = "90s"

# Secret holding each plane's public serving certificate, unless a byo secretName is set.
PUBLIC_TLS_SECRETS: dict[PlaneKind, str] = {
    PlaneKind.control: "control-plane-tls",
    PlaneKind.data: "apps-wildcard-tls",
    PlaneKind.observability: "ingestion-tls",
}


def gateway_service_host(topology: Topology) -> str:
    """In-cluster DNS name of the gateway Service, what same-cluster agents dial."""
    return f"cluster-gateway.{topology.control.namespace}.svc.cluster.local"


def shares_control_cluster(topology: Topology, plane: Plane) -> bool:
    """Whether ``plane`` runs in the control plane's cluster (agents use ClusterIP)."""
    return plane.cluster == topology.control.cluster


def needs_external_gateway(topology: Topology) -> bool:
    """Whether some plane lives in another cluster, so the gateway needs a LoadBalancer."""
    return any(not shares_control_cluster(topology, p) for p in topology.planes)


def agent_server_url(topology: Topology, plane: Plane) -> str:
    """The ``--server-url`` of ``plane``'s agent (the contract's rule)."""
    if shares_control_cluster(topology, plane):
        host = gateway_service_host(topology)
    elif topology.gateway.external_host:
        host = topology.gateway.external_host
    else:
        raise RenderError(
            f"plane {plane.name!r} is in cluster {plane.cluster!r}, away from the control "
            "plane, but the topology names no address for its agents to dial",
            hint="set gateway.externalHost to the DNS name of the gateway's LoadBalancer",
            problems=[
                Problem("required when planes live in other clusters", path="gateway.externalHost")
            ],
        )
    return f"wss://{host}:{topology.gateway.port}/ws"


def components(plane: Plane) -> dict[str, dict[str, Any]]:
    """The plane's components by name: overrides from the topology, else the seed's."""
    given = {c.name: c for c in plane.components}
    merged: list[Component] = [given.pop(c.name, c) for c in defaults.COMPONENTS[plane.kind]]
    merged.extend(given.values())
    return {
        c.name: {
            "replicas": c.replicas,
            "requests": {"cpu": c.resources.cpu_request, "memory": c.resources.memory_request},
            "limits": {"cpu": c.resources.cpu_limit, "memory": c.resources.memory_limit},
            "storage": c.storage,
        }
        for c in merged
    }


def gateway_sans(topology: Topology) -> tuple[list[str], list[str]]:
    """DNS names and IP addresses of the gateway serving certificate (contract order)."""
    ns = topology.control.namespace
    dns = ["cluster-gateway", f"cluster-gateway.{ns}", f"cluster-gateway.{ns}.svc"]
    dns.append(f"cluster-gateway.{ns}.svc.cluster.local")
    ips = ["127.0.0.1"]
    for name in (topology.gateway.external_host, *topology.gateway.extra_sans):
        if not name:
            continue
        try:
            ip = str(ipaddress.ip_address(name))
        except ValueError:
            if name not in dns:
                dns.append(name)
        else:
            if ip not in ips:
                ips.append(ip)
    dns.append("localhost")
    return dns, ips


def _public_dns_names(plane: Plane) -> list[str]:
    keys = defaults.DOMAIN_KEYS[plane.kind]
    names = [plane.domains[k] for k in keys if plane.domains.get(k)]
    if plane.kind is PlaneKind.data and plane.public_virtual_host:
        names.append(plane.public_virtual_host)
    return list(dict.fromkeys(names))


def _read_pem(path: str, base: Path, field: str) -> str:
    file = Path(path) if Path(path).is_absolute() else base / path
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RenderError(
            f"cannot read {file}: {e.strerror if isinstance(e, OSError) else 'not UTF-8'}",
            hint="point the TLS file at a readable PEM file (paths are relative to the topology)",
            problems=[Problem("unreadable", where=str(file), path=field)],
        ) from e
    if "-----BEGIN " not in text:
        raise RenderError(
            f"{file} is not PEM",
            hint="give a PEM file (-----BEGIN CERTIFICATE----- / PRIVATE KEY-----)",
            problems=[Problem("no PEM block", where=str(file), path=field)],
        )
    return base64.b64encode(text.encode()).decode()


def tls_values(topology: Topology, plane: Plane) -> dict[str, Any]:
    """The plane's public TLS: which objects to render and the Secret consumers mount."""
    tls = plane.tls
    where = f"planes.{plane.name}.tls"
    values: dict[str, Any] = {
        "mode": tls.issuer.value,
        "secret_name": PUBLIC_TLS_SECRETS.get(plane.kind, ""),
        "dns_names": _public_dns_names(plane),
        "issuer": None,
    }
    if tls.issuer is TLSIssuer.cert_manager and tls.issuer_ref is not None:
        ref = tls.issuer_ref
        values["issuer"] = {"name": ref.name, "kind": ref.kind, "group": ref.group}
    if tls.issuer is TLSIssuer.byo:
        if tls.secret_name:
            values.update(mode="byo-secret", secret_name=tls.secret_name)
        elif tls.cert_file and tls.key_file:
            src = Path(topology.source)
            base = src.parent if topology.source and src.is_file() else Path.cwd()
            values.update(
                mode="byo-files",
                cert_b64=_read_pem(tls.cert_file, base, f"{where}.certFile"),
                key_b64=_read_pem(tls.key_file, base, f"{where}.keyFile"),
                ca_b64=_read_pem(tls.ca_file, base, f"{where}.caFile") if tls.ca_file else "",
            )
        else:
            raise RenderError(
                f"plane {plane.name!r} brings its own certificate but names neither a Secret "
                "nor files",
                hint="set tls.secretName, or tls.certFile and tls.keyFile",
                problems=[Problem("byo needs secretName or certFile+keyFile", path=where)],
            )
    return values


def plane_values(topology: Topology, plane: Plane, images: dict[str, str]) -> dict[str, Any]:
    """Everything one plane chart needs, as plain data."""
    lb = plane.load_balancer
    gw = topology.gateway
    dns, ips = gateway_sans(topology)
    values: dict[str, Any] = {
        "topology": {"name": topology.name, "type": topology.type.value},
        "organization": topology.organization,
        "plane": {
            "kind": plane.kind.value,
            "type": plane.kind.plane_type,
            "name": plane.name,
            "id": plane.effective_plane_id,
            "cluster": plane.cluster,
            "namespace": plane.namespace,
            "domains": dict(sorted(plane.domains.items())),
            "public_virtual_host": plane.public_virtual_host,
        },
        "labels": dict(PART_OF),
        "components": components(plane),
        "images": images,
        "pull_secrets": list(topology.images.pull_secrets),
        "image_pull_secrets": [{"name": s} for s in topology.images.pull_secrets],
        "lb": {
            "https": lb.ports.https,
            "http": lb.ports.http,
            "address": lb.address,
            "shared": topology.load_balancer_mode is LoadBalancerMode.shared,
            "share_key": f"choreoctl-{topology.name}",
        },
        "tls": tls_values(topology, plane),
        "trust": {"cert_manager": topology.trust_issuer is TLSIssuer.cert_manager},
        "control_namespace": topology.control.namespace,
        "gateway": {
            "port": gw.port,
            "internal_port": gw.internal_port,
            "health_port": gw.health_port,
            "heartbeat_interval": HEARTBEAT_INTERVAL,
            "heartbeat_timeout": HEARTBEAT_TIMEOUT,
            "dns_names": dns,
            "ip_addresses": ips,
            "external": needs_external_gateway(topology),
            "service_host": gateway_service_host(topology),
        },
        "agent": None,
    }
    if plane.kind is not PlaneKind.control:
        values["agent"] = {
            "server_url": agent_server_url(topology, plane),
            "plane_type": plane.kind.plane_type,
            "plane_id": plane.effective_plane_id,
        }
    return values


def all_plane_values(topology: Topology) -> list[tuple[Plane, dict[str, Any]]]:
    """Every plane with its values, in topology order."""
    images = resolve_images(topology.images)
    return [(p, plane_values(topology, p, images)) for p in topology.planes]
