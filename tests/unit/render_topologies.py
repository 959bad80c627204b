"""Topologies built in Python for the renderer tests, independent of the YAML loader.

They mirror the built-in topologies' shapes (single-cluster, multi-region) so chart
logic is tested even where a built-in file does not exercise a branch.
"""

from __future__ import annotations

from dataclasses import replace

from choreoctl.topology import defaults
from choreoctl.topology.model import (
    Cluster,
    Environment,
    Gateway,
    Plane,
    PlaneKind,
    Topology,
    TopologyType,
)

NS = defaults.NAMESPACES


def _control(cluster: str) -> Plane:
    return Plane(
        PlaneKind.control,
        "default",
        cluster,
        NS[PlaneKind.control],
        domains={
            "console": "console.example.com",
            "api": "api.example.com",
            "identity": "identity.example.com",
        },
    )


def _data(name: str, cluster: str, apps: str, host: str) -> Plane:
    return Plane(
        PlaneKind.data,
        name,
        cluster,
        NS[PlaneKind.data],
        domains={"apps": apps},
        public_virtual_host=host,
        observability_plane="default",
    )


def _observability(cluster: str) -> Plane:
    return Plane(
        PlaneKind.observability,
        "default",
        cluster,
        NS[PlaneKind.observability],
        domains={"ingestion": "logs.example.com"},
    )


def _build(cluster: str) -> Plane:
    return Plane(
        PlaneKind.build, "default", cluster, NS[PlaneKind.build], observability_plane="default"
    )


def single_cluster() -> Topology:
    """All four planes in one cluster, one namespace each."""
    return Topology(
        name="single-cluster",
        type=TopologyType.single_cluster,
        clusters=(Cluster("local", "kind-openchoreo"),),
        planes=(
            _control("local"),
            _data("default", "local", "*.apps.example.com", "apps.example.com"),
            _build("local"),
            _observability("local"),
        ),
        environments=(Environment("development", "default", "dev"),),
    )


def multi_region() -> Topology:
    """Central control plane, us/eu/apac data planes, build and observability clusters."""
    regions = ("us", "eu", "apac")
    clusters = (
        Cluster("control", "control", "us-east-1"),
        Cluster("observability", "observability", "us-east-1"),
        Cluster("build", "build", "us-east-1"),
        *(Cluster(r, r, r) for r in regions),
    )
    data = tuple(_data(r, r, f"*.{r}.apps.example.com", f"{r}.apps.example.com") for r in regions)
    return Topology(
        name="multi-region",
        type=TopologyType.multi_region,
        clusters=clusters,
        planes=(_control("control"), *data, _build("build"), _observability("observability")),
        environments=tuple(
            Environment(f"production-{r}", r, f"prod-{r}", is_production=True) for r in regions
        ),
        gateway=Gateway(external_host="gateway.example.com", extra_sans=("203.0.113.10",)),
    )


def with_planes(topology: Topology, **changes: object) -> Topology:
    """``topology`` with the given top-level fields replaced."""
    return replace(topology, **changes)  # type: ignore[arg-type]
