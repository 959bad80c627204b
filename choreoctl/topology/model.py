"""The typed topology: what runs where, as the rest of choreoctl sees it.

A topology file (``apiVersion: choreoctl.dev/v1alpha1``, ``kind: Topology``) is loaded
and validated by :mod:`choreoctl.topology.loader`; everything downstream (renderer,
install engine, preflight, doctor) takes a :class:`Topology` and never the raw YAML.
Defaults are the seed's figures and live in :mod:`choreoctl.topology.defaults`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class TopologyType(enum.StrEnum):
    """The shape of the installation."""

    single_cluster = "single-cluster"
    multi_cluster = "multi-cluster"
    multi_region = "multi-region"


class PlaneKind(enum.StrEnum):
    """The four planes; the value is the chart directory under ``templates/``."""

    control = "control-plane"
    data = "data-plane"
    build = "build-plane"
    observability = "observability-plane"

    @property
    def plane_type(self) -> str:
        """The tunnel's ``planeType`` (``dataplane`` …); empty for the control plane."""
        return {
            "data-plane": "dataplane",
            "build-plane": "buildplane",
            "observability-plane": "observabilityplane",
        }.get(self.value, "")


class TLSIssuer(enum.StrEnum):
    """Who issues a certificate: cert-manager (default), choreoctl itself, or the user."""

    cert_manager = "cert-manager"
    choreoctl = "choreoctl"
    byo = "byo"


class LoadBalancerMode(enum.StrEnum):
    """One address per plane, or one shared address with per-service ports."""

    dedicated = "dedicated"
    shared = "shared"


@dataclass(frozen=True)
class Cluster:
    """A Kubernetes cluster, reached through a kubeconfig context."""

    name: str
    context: str
    region: str = ""


@dataclass(frozen=True)
class IssuerRef:
    """A cert-manager issuer to use instead of the self-signed chain the charts create."""

    name: str
    kind: str = "ClusterIssuer"
    group: str = "cert-manager.io"


@dataclass(frozen=True)
class TLS:
    """The TLS strategy of one plane's public endpoints."""

    issuer: TLSIssuer = TLSIssuer.cert_manager
    issuer_ref: IssuerRef | None = None
    secret_name: str = ""  # byo: an existing kubernetes.io/tls Secret in the plane namespace
    cert_file: str = ""  # byo: PEM files choreoctl turns into that Secret
    key_file: str = ""
    ca_file: str = ""


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container, Kubernetes quantities as strings."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


@dataclass(frozen=True)
class Component:
    """One workload of a plane with its replica count and resources."""

    name: str
    replicas: int
    resources: Resources
    storage: str = ""  # PVC size, where the component keeps data ("" = none)


@dataclass(frozen=True)
class Ports:
    """Public ports of a plane's LoadBalancer Service; ``http`` 0 turns the redirect off."""

    https: int = 443
    http: int = 80


@dataclass(frozen=True)
class LoadBalancer:
    """How a plane's public Service gets its address."""

    ports: Ports = field(default_factory=Ports)
    address: str = ""  # a requested loadBalancerIP, or "" for whatever the provider gives


@dataclass(frozen=True)
class Plane:
    """One plane of the platform, placed in a cluster and namespace."""

    kind: PlaneKind
    name: str  # the plane CR name and default planeID
    cluster: str  # Cluster.name
    namespace: str
    plane_id: str = ""  # defaults to name
    domains: dict[str, str] = field(default_factory=dict)
    tls: TLS = field(default_factory=TLS)
    load_balancer: LoadBalancer = field(default_factory=LoadBalancer)
    components: tuple[Component, ...] = ()
    public_virtual_host: str = ""  # data planes only
    observability_plane: str = ""  # data and build planes: ObservabilityPlane name
    secret_store: str = ""  # data planes: ClusterSecretStore name

    @property
    def effective_plane_id(self) -> str:
        """``plane_id`` if set, else the name (as OpenChoreo's gateway does)."""
        return self.plane_id or self.name

    def component(self, name: str) -> Component:
        """The component called ``name``; KeyError if the plane has none."""
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(name)


@dataclass(frozen=True)
class Environment:
    """An Environment CR: a named stage bound (immutably) to one data plane."""

    name: str
    data_plane: str
    dns_prefix: str
    is_production: bool = False


@dataclass(frozen=True)
class Images:
    """Where every image comes from; ``registry`` redirects all of them (air-gapped)."""

    registry: str = ""
    pull_secrets: tuple[str, ...] = ()
    tag: str = ""  # choreoctl's own image tag; "" = the choreoctl version
    digests: dict[str, str] = field(default_factory=dict)  # image name -> sha256:…


@dataclass(frozen=True)
class Gateway:
    """The cluster gateway in the control plane, the one address every agent dials."""

    port: int = 8443
    internal_port: int = 8444
    health_port: int = 8080
    external_host: str = ""  # name agents in other clusters dial; "" in single-cluster
    extra_sans: tuple[str, ...] = ()


@dataclass(frozen=True)
class Topology:
    """A whole platform: clusters, planes, organization and install-wide settings."""

    name: str
    type: TopologyType
    clusters: tuple[Cluster, ...]
    planes: tuple[Plane, ...]
    organization: str = "default-organization"
    environments: tuple[Environment, ...] = ()
    images: Images = field(default_factory=Images)
    gateway: Gateway = field(default_factory=Gateway)
    trust_issuer: TLSIssuer = TLSIssuer.cert_manager  # issuer of the gateway CA and agent certs
    load_balancer_mode: LoadBalancerMode = LoadBalancerMode.dedicated
    source: str = ""  # file or built-in name it was loaded from

    @property
    def control(self) -> Plane:
        """The one control plane (validation guarantees exactly one)."""
        return next(p for p in self.planes if p.kind is PlaneKind.control)

    def planes_of(self, kind: PlaneKind) -> tuple[Plane, ...]:
        """Every plane of ``kind``, in file order."""
        return tuple(p for p in self.planes if p.kind is kind)

    def cluster(self, name: str) -> Cluster:
        """The cluster called ``name``; KeyError if there is none."""
        for c in self.clusters:
            if c.name == name:
                return c
        raise KeyError(name)

    def plane(self, name: str, kind: PlaneKind | None = None) -> Plane:
        """The plane called ``name`` (optionally of ``kind``); KeyError if there is none."""
        for p in self.planes:
            if p.name == name and (kind is None or p.kind is kind):
                return p
        raise KeyError(name)
