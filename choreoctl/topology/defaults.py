"""The seed's figures: default namespaces, components, resources and storage per plane.

These are the numbers preflight sums against node capacity and the charts render;
a topology's ``components`` overrides replace them field by field.
"""

from __future__ import annotations

from choreoctl.topology.model import Component, PlaneKind, Resources

NAMESPACES: dict[PlaneKind, str] = {
    PlaneKind.control: "openchoreo-control-plane",
    PlaneKind.data: "openchoreo-data-plane",
    PlaneKind.build: "openchoreo-build-plane",
    PlaneKind.observability: "openchoreo-observability-plane",
}

_AGENT = Component("cluster-agent", 1, Resources("50m", "100m", "128Mi", "256Mi"))

COMPONENTS: dict[PlaneKind, tuple[Component, ...]] = {
    PlaneKind.control: (
        Component("backstage", 1, Resources("200m", "2000m", "256Mi", "2Gi")),
        Component("api", 1, Resources("100m", "500m", "256Mi", "512Mi")),
        Component("controller-manager", 1, Resources("100m", "500m", "128Mi", "512Mi")),
        Component("cluster-gateway", 1, Resources("100m", "500m", "128Mi", "256Mi")),
        # The database is a PVC used by the API; no pod of its own in the seed's table.
        Component("database", 0, Resources("0", "0", "0", "0"), storage="500Mi"),
    ),
    PlaneKind.data: (
        Component("kgateway", 1, Resources("100m", "200m", "128Mi", "256Mi")),
        _AGENT,
    ),
    PlaneKind.build: (
        Component("argo-workflows", 1, Resources("25m", "50m", "32Mi", "64Mi")),
        _AGENT,
        Component("registry", 0, Resources("0", "0", "0", "0"), storage="10Gi"),
        Component("podman-cache", 0, Resources("0", "0", "0", "0"), storage="10Gi"),
    ),
    PlaneKind.observability: (
        # replicas = OpenSearch data nodes; storage is per node.
        Component("opensearch", 1, Resources("100m", "1000m", "1Gi", "1Gi"), storage="5Gi"),
        Component("observer", 1, Resources("100m", "200m", "128Mi", "200Mi")),
        _AGENT,
    ),
}

# Domain keys each plane kind must (or may) declare.
DOMAIN_KEYS: dict[PlaneKind, tuple[str, ...]] = {
    PlaneKind.control: ("console", "api", "identity"),
    PlaneKind.data: ("apps",),
    PlaneKind.build: (),
    PlaneKind.observability: ("ingestion",),
}

DEFAULT_ORGANIZATION = "default-organization"
API_VERSION = "choreoctl.dev/v1alpha1"
KIND = "Topology"
