"""The plane custom resources as data: kinds, names, validation and the spec we write.

Pure functions of the topology, so what registration writes can be tested without a
cluster and reviewed in one place against the CRDs in ``templates/crds/``.
"""

from __future__ import annotations

import re
from typing import Any

from choreoctl.errors import Problem
from choreoctl.topology.model import Plane, PlaneKind, Topology

GROUP = "openchoreo.dev"
API_VERSION = "openchoreo.dev/v1alpha1"
KINDS: dict[PlaneKind, str] = {
    PlaneKind.data: "DataPlane",
    PlaneKind.build: "BuildPlane",
    PlaneKind.observability: "ObservabilityPlane",
}
# `--type data|build|observability` on the command line.
TYPE_NAMES: dict[str, PlaneKind] = {
    "data": PlaneKind.data,
    "build": PlaneKind.build,
    "observability": PlaneKind.observability,
}
LABELS = {
    "app.kubernetes.io/managed-by": "choreoctl",
    "app.kubernetes.io/part-of": "openchoreo",
}
OBSERVER_PORT = 8080

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def org_namespace(topology: Topology) -> str:
    """The namespace of the organization's objects (named after the organization)."""
    return topology.organization


def kind_of(plane: Plane) -> str:
    """The CR kind of an agent plane (DataPlane, BuildPlane, ObservabilityPlane)."""
    return KINDS[plane.kind]


def public_virtual_host(plane: Plane) -> str:
    """A data plane's public host: the explicit one, else its apps domain."""
    return plane.public_virtual_host or plane.domains.get("apps", "")


def observer_url(topology: Topology, plane: Plane) -> str:
    """Where the control plane reaches this observability plane's Observer API.

    In the control plane's cluster, the Service DNS name; elsewhere the plane's
    ``observer`` domain, else the ingestion domain's host (same gateway, 443).
    """
    if plane.cluster == topology.control.cluster:
        return f"http://observer.{plane.namespace}.svc.cluster.local:{OBSERVER_PORT}"
    host = plane.domains.get("observer") or plane.domains.get("ingestion", "")
    return f"https://{host}" if host else ""


def validate_names(plane: Plane) -> list[Problem]:
    """Problems with the names a plane CR would carry (DNS-1123, CRD patterns)."""
    problems: list[Problem] = []
    if not (_SUBDOMAIN.match(plane.name) and len(plane.name) <= 253):
        problems.append(
            Problem(
                f"plane name {plane.name!r} is not a valid Kubernetes object name",
                path="name",
                expected="lower-case letters, digits, '-' and '.', alphanumeric at both ends",
            )
        )
    pid = plane.effective_plane_id
    if not (_LABEL.match(pid) and len(pid) <= 63):
        problems.append(
            Problem(
                f"planeID {pid!r} is not a DNS label",
                path="planeID",
                expected="at most 63 lower-case letters, digits and '-'",
            )
        )
    if plane.kind is PlaneKind.data:
        host = public_virtual_host(plane)
        if not host:
            problems.append(
                Problem(
                    "a data plane needs a public virtual host",
                    path="publicVirtualHost",
                    hint="pass --public-virtual-host or set domains.apps in the topology",
                )
            )
        elif not _HOST.match(host):
            problems.append(
                Problem(
                    f"publicVirtualHost {host!r} is not a host name",
                    path="publicVirtualHost",
                    expected="a lower-case DNS name, optionally starting with '*.'",
                )
            )
    return problems


def plane_cr(topology: Topology, plane: Plane, client_ca: str) -> dict[str, Any]:
    """The plane CR registration writes (server-side applied by field manager choreoctl)."""
    spec: dict[str, Any] = {
        "planeID": plane.effective_plane_id,
        "clusterAgent": {"clientCA": {"value": client_ca}},
    }
    if plane.kind is PlaneKind.data:
        spec["gateway"] = {"publicVirtualHost": public_virtual_host(plane)}
        if plane.secret_store:
            spec["secretStoreRef"] = {"name": plane.secret_store}
    if plane.kind in (PlaneKind.data, PlaneKind.build) and plane.observability_plane:
        spec["observabilityPlaneRef"] = plane.observability_plane
    if plane.kind is PlaneKind.observability:
        spec["observerURL"] = observer_url(topology, plane)
    labels = dict(LABELS)
    labels["openchoreo.dev/cluster"] = plane.cluster
    return {
        "apiVersion": API_VERSION,
        "kind": kind_of(plane),
        "metadata": {
            "name": plane.name,
            "namespace": org_namespace(topology),
            "labels": labels,
            "annotations": {"openchoreo.dev/agent-namespace": plane.namespace},
        },
        "spec": spec,
    }
