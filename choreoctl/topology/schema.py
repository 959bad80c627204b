"""The topology file format: a located YAML document → a typed :class:`Topology`.

This module knows every field of the format (README "Topology format"), its type, its
default and the checks on its own value. Rules that relate several fields (references,
uniqueness, ports, regions) live in :mod:`choreoctl.topology.rules`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from choreoctl.topology import checks, defaults
from choreoctl.topology.components import components
from choreoctl.topology.fields import Reader
from choreoctl.topology.model import (
    TLS,
    Cluster,
    Environment,
    Gateway,
    Images,
    IssuerRef,
    LoadBalancer,
    LoadBalancerMode,
    Plane,
    PlaneKind,
    Ports,
    TLSIssuer,
    Topology,
    TopologyType,
)
from choreoctl.topology.yamlsource import Path

# Field lists, in the order the README documents them.
TOP_FIELDS = ("apiVersion", "kind", "metadata", "spec")
SPEC_FIELDS = (
    "type",
    "clusters",
    "organization",
    "images",
    "gateway",
    "trust",
    "loadBalancer",
    "planes",
)
PLANE_FIELDS: dict[PlaneKind, tuple[str, ...]] = {
    PlaneKind.control: ("domains", "tls", "loadBalancer"),
    PlaneKind.data: (
        "domains",
        "tls",
        "loadBalancer",
        "publicVirtualHost",
        "observabilityPlane",
        "secretStore",
    ),
    PlaneKind.build: ("observabilityPlane",),
    PlaneKind.observability: ("domains", "tls", "loadBalancer"),
}
COMMON_PLANE_FIELDS = ("name", "cluster", "namespace", "planeID", "components")
PLANE_KEYS = {"control": PlaneKind.control, "data": PlaneKind.data}
PLANE_KEYS |= {"build": PlaneKind.build, "observability": PlaneKind.observability}
DEFAULT_ENVIRONMENTS: tuple[tuple[str, str, bool], ...] = (
    ("development", "dev", False),
    ("staging", "stage", False),
    ("production", "prod", True),
)
MAX_PORT = 65535


@dataclass
class Parsed:
    """A topology with the document path of each plane, cluster and environment."""

    topology: Topology
    plane_paths: list[Path] = field(default_factory=list)  # parallel to topology.planes
    cluster_paths: list[Path] = field(default_factory=list)
    env_paths: list[Path] = field(default_factory=list)
    description: str = ""


def parse_topology(r: Reader, source: str, base_dir: str) -> Parsed:
    """Read the whole document; problems go to ``r``, defaults stand in for bad values."""
    root = r.doc.data
    if not isinstance(root, dict):
        r.add((), "the document is not a mapping", expected="a Topology mapping at the top")
        root = {}
    top = r.obj(root, (), TOP_FIELDS, required=("apiVersion", "kind", "metadata", "spec"))
    for key, want in (("apiVersion", defaults.API_VERSION), ("kind", defaults.KIND)):
        if key in top and top[key] != want:
            r.add((key,), f"{top[key]!r} is not supported", expected=want)
    meta = r.obj(top.get("metadata"), ("metadata",), ("name", "description"), ("name",))
    name = r.text(meta, ("metadata",), "name", "topology", checks.dns_label)
    description = r.text(meta, ("metadata",), "description")
    sp: Path = ("spec",)
    spec = r.obj(top.get("spec"), sp, SPEC_FIELDS, required=("type", "clusters", "planes"))
    ttype = r.choice(spec, sp, "type", TopologyType, TopologyType.multi_cluster)
    clusters, cluster_paths = _clusters(r, spec)
    planes, plane_paths = _planes(r, spec, clusters, base_dir)
    org = r.obj(spec.get("organization"), (*sp, "organization"), ("name", "environments"))
    org_name = r.text(
        org, (*sp, "organization"), "name", defaults.DEFAULT_ORGANIZATION, checks.dns_label
    )
    environments, env_paths = _environments(r, org, planes)
    lb = r.obj(spec.get("loadBalancer"), (*sp, "loadBalancer"), ("mode",))
    trust = r.obj(spec.get("trust"), (*sp, "trust"), ("issuer",))
    trust_issuer = r.choice(trust, (*sp, "trust"), "issuer", TLSIssuer, TLSIssuer.cert_manager)
    if trust_issuer is TLSIssuer.byo:
        r.add((*sp, "trust", "issuer"), "'byo' is not allowed", "cert-manager | choreoctl")
        trust_issuer = TLSIssuer.cert_manager
    topology = Topology(
        name=name,
        type=ttype,
        clusters=tuple(clusters),
        planes=tuple(planes),
        organization=org_name,
        environments=tuple(environments),
        images=_images(r, spec),
        gateway=_gateway(r, spec),
        trust_issuer=trust_issuer,
        load_balancer_mode=r.choice(
            lb, (*sp, "loadBalancer"), "mode", LoadBalancerMode, LoadBalancerMode.dedicated
        ),
        source=source,
    )
    return Parsed(topology, plane_paths, cluster_paths, env_paths, description)


def _clusters(r: Reader, spec: dict[str, Any]) -> tuple[list[Cluster], list[Path]]:
    clusters: list[Cluster] = []
    paths: list[Path] = []
    for i, item in enumerate(r.list(spec, ("spec",), "clusters")):
        path: Path = ("spec", "clusters", i)
        c = r.obj(item, path, ("name", "context", "region"), ("name", "context"))
        clusters.append(
            Cluster(
                name=r.text(c, path, "name", f"cluster-{i}", checks.dns_label),
                context=r.text(c, path, "context", check=_non_empty),
                region=r.text(c, path, "region", check=checks.dns_label),
            )
        )
        paths.append(path)
    return clusters, paths


def _non_empty(value: str) -> str:
    return "" if value.strip() else "is empty"


def _planes(
    r: Reader, spec: dict[str, Any], clusters: list[Cluster], base_dir: str
) -> tuple[list[Plane], list[Path]]:
    pp: Path = ("spec", "planes")
    raw = r.obj(spec.get("planes"), pp, tuple(PLANE_KEYS), required=("control", "data"))
    found: list[tuple[PlaneKind, Any, Path]] = []
    for key, kind in PLANE_KEYS.items():
        value = raw.get(key)
        if value is None:
            continue
        if kind is PlaneKind.data:
            if isinstance(value, dict):
                found.append((kind, value, (*pp, key)))  # one data plane written as a mapping
            else:
                found += [(kind, v, (*pp, key, i)) for i, v in enumerate(r.list(raw, pp, key))]
        elif isinstance(value, list):
            r.add(
                (*pp, key),
                f"found a list of {len(value)} {key} planes",
                expected=f"one {key} plane (a mapping)",
                hint=f"a topology has exactly one {key} plane",
            )
        else:
            found.append((kind, value, (*pp, key)))
    obs = next((v for k, v, _ in found if k is PlaneKind.observability), None)
    obs_name = "default"
    if isinstance(obs, dict) and isinstance(obs.get("name"), str):
        obs_name = obs["name"]
    only_cluster = clusters[0].name if len(clusters) == 1 else ""
    planes = [
        _plane(r, kind, value, path, only_cluster, obs_name if obs is not None else "", base_dir)
        for kind, value, path in found
    ]
    return planes, [path for _, _, path in found]


def _plane(
    r: Reader,
    kind: PlaneKind,
    value: Any,
    path: Path,
    only_cluster: str,
    obs_name: str,
    base_dir: str,
) -> Plane:
    allowed = COMMON_PLANE_FIELDS + PLANE_FIELDS[kind]
    required = () if only_cluster else ("cluster",)
    p = r.obj(value, path, allowed, required)
    name = r.text(p, path, "name", "control-plane" if kind is PlaneKind.control else "default")
    if name:
        problem = checks.dns_label(name)
        if problem:
            r.add((*path, "name"), f"{name!r} {problem}")
    domains: dict[str, str] = {}
    if "domains" in PLANE_FIELDS[kind]:
        domains = _domains(r, kind, p.get("domains"), (*path, "domains"))
    pvh = ""
    if kind is PlaneKind.data:
        default_pvh = domains.get("apps", "")[2:]
        pvh = r.text(p, path, "publicVirtualHost", default_pvh, checks.dns_name)
    return Plane(
        kind=kind,
        name=name,
        cluster=r.text(p, path, "cluster", only_cluster, checks.dns_label),
        namespace=r.text(p, path, "namespace", defaults.NAMESPACES[kind], checks.dns_label),
        plane_id=r.text(p, path, "planeID", "", checks.dns_label),
        domains=domains,
        tls=_tls(r, p.get("tls"), (*path, "tls"), base_dir),
        load_balancer=_load_balancer(r, p.get("loadBalancer"), (*path, "loadBalancer")),
        components=components(r, kind, p.get("components"), (*path, "components")),
        public_virtual_host=pvh,
        observability_plane=r.text(p, path, "observabilityPlane", obs_name, checks.dns_label)
        if kind in (PlaneKind.data, PlaneKind.build)
        else "",
        secret_store=r.text(p, path, "secretStore", "", checks.dns_name),
    )


def _domains(r: Reader, kind: PlaneKind, value: Any, path: Path) -> dict[str, str]:
    keys = defaults.DOMAIN_KEYS[kind]
    d = r.obj(value, path, keys, required=keys)
    out: dict[str, str] = {}
    for key in keys:
        if key == "apps":
            check, expected = checks.wildcard_domain, "a wildcard like *.apps.example.com"
        else:
            check, expected = checks.dns_name, "a DNS name like console.example.com"
        text = r.text(d, path, key, "", check, expected=expected)
        if text:
            out[key] = text
    return out


def _tls(r: Reader, value: Any, path: Path, base_dir: str) -> TLS:
    files = ("certFile", "keyFile", "caFile")
    t = r.obj(value, path, ("issuer", "issuerRef", "secretName", *files))
    issuer = r.choice(t, path, "issuer", TLSIssuer, TLSIssuer.cert_manager)
    ref = None
    if t.get("issuerRef") is not None:
        rp = (*path, "issuerRef")
        if issuer is not TLSIssuer.cert_manager:
            r.add(rp, f"issuerRef is only used with issuer cert-manager, not {issuer.value}")
        ri = r.obj(t["issuerRef"], rp, ("name", "kind", "group"), ("name",))
        kind = r.text(ri, rp, "kind", "ClusterIssuer", _issuer_kind, "Issuer | ClusterIssuer")
        ref = IssuerRef(
            name=r.text(ri, rp, "name", "", checks.dns_name),
            kind=kind,
            group=r.text(ri, rp, "group", "cert-manager.io", checks.dns_name),
        )
    byo = {k: t[k] for k in ("secretName", *files) if t.get(k) is not None}
    if byo and issuer is not TLSIssuer.byo:
        r.add((*path, next(iter(byo))), f"only used with issuer byo, not {issuer.value}", key=True)
    paths = {k: _file(r, t, path, k, base_dir) for k in files}
    secret = r.text(t, path, "secretName", "", checks.dns_name)
    if issuer is TLSIssuer.byo and not byo:
        r.add(
            path,
            "issuer byo needs a certificate",
            expected="secretName, or certFile and keyFile",
            hint="name an existing kubernetes.io/tls Secret or the PEM files",
        )
    elif issuer is TLSIssuer.byo and "secretName" not in byo:
        for k in ("certFile", "keyFile"):
            if k not in byo:
                r.add(path, f"certFile and keyFile go together; {k} is missing")
    elif "secretName" in byo and ("certFile" in byo or "keyFile" in byo):
        r.add((*path, "secretName"), "give either secretName or certFile/keyFile, not both")
    return TLS(issuer, ref, secret, paths["certFile"], paths["keyFile"], paths["caFile"])


def _issuer_kind(value: str) -> str:
    return "" if value in ("Issuer", "ClusterIssuer") else "is not an issuer kind"


def _file(r: Reader, t: dict[str, Any], path: Path, key: str, base_dir: str) -> str:
    """A PEM file path, resolved against the topology file's directory; must exist."""
    name = r.text(t, path, key)
    if not name:
        return ""
    full = os.path.normpath(os.path.join(base_dir, os.path.expanduser(name)))
    if not os.path.isfile(full):
        r.add(
            (*path, key),
            f"file {name!r} not found (looked at {full})",
            hint="paths are relative to the topology file",
        )
        return ""
    return full


def _load_balancer(r: Reader, value: Any, path: Path) -> LoadBalancer:
    lb = r.obj(value, path, ("address", "ports"))
    pp = (*path, "ports")
    ports = r.obj(lb.get("ports"), pp, ("https", "http"))
    return LoadBalancer(
        ports=Ports(
            https=r.integer(ports, pp, "https", 443, 1, MAX_PORT),
            http=r.integer(ports, pp, "http", 80, 0, MAX_PORT),
        ),
        address=r.text(lb, path, "address", "", checks.ip_address),
    )


def _environments(
    r: Reader, org: dict[str, Any], planes: list[Plane]
) -> tuple[list[Environment], list[Path]]:
    data = [p.name for p in planes if p.kind is PlaneKind.data]
    only = data[0] if len(data) == 1 else ""
    ep: Path = ("spec", "organization", "environments")
    if org.get("environments") is None:
        first = data[0] if data else ""
        envs = [Environment(n, first, d, prod) for n, d, prod in DEFAULT_ENVIRONMENTS]
        return envs, [ep] * len(envs)
    out: list[Environment] = []
    paths: list[Path] = []
    for i, item in enumerate(r.list(org, ep[:2], "environments")):
        path = (*ep, i)
        required = ("name", "dnsPrefix") if only else ("name", "dataPlane", "dnsPrefix")
        e = r.obj(item, path, ("name", "dataPlane", "dnsPrefix", "isProduction"), required)
        out.append(
            Environment(
                name=r.text(e, path, "name", "", checks.dns_label),
                data_plane=r.text(e, path, "dataPlane", only, checks.dns_label),
                dns_prefix=r.text(e, path, "dnsPrefix", "", checks.dns_label),
                is_production=r.boolean(e, path, "isProduction", False),
            )
        )
        paths.append(path)
    return out, paths


def _images(r: Reader, spec: dict[str, Any]) -> Images:
    path: Path = ("spec", "images")
    i = r.obj(spec.get("images"), path, ("registry", "pullSecrets", "tag", "digests"))
    secrets = tuple(
        r.text_value(v, (*path, "pullSecrets", n), "", checks.dns_name)
        for n, v in enumerate(r.list(i, path, "pullSecrets"))
    )
    digests: dict[str, str] = {}
    raw = i.get("digests")
    if raw is not None and not isinstance(raw, dict):
        r.add((*path, "digests"), "found a non-mapping", expected="image name: sha256:…")
    elif raw:
        for image, digest in raw.items():
            text = r.text_value(digest, (*path, "digests", image), "", checks.image_digest)
            if text:
                digests[image] = text
    return Images(
        registry=r.text(i, path, "registry", "", checks.registry),
        pull_secrets=tuple(s for s in secrets if s),
        tag=r.text(i, path, "tag", "", checks.image_tag),
        digests=digests,
    )


def _gateway(r: Reader, spec: dict[str, Any]) -> Gateway:
    path: Path = ("spec", "gateway")
    names = ("port", "internalPort", "healthPort", "externalHost", "extraSANs")
    g = r.obj(spec.get("gateway"), path, names)
    gateway = Gateway(
        port=r.integer(g, path, "port", 8443, 1, MAX_PORT),
        internal_port=r.integer(g, path, "internalPort", 8444, 1, MAX_PORT),
        health_port=r.integer(g, path, "healthPort", 8080, 1, MAX_PORT),
        external_host=r.text(g, path, "externalHost", "", checks.host_or_ip),
        extra_sans=tuple(
            r.text_value(v, (*path, "extraSANs", n), "", checks.host_or_ip)
            for n, v in enumerate(r.list(g, path, "extraSANs"))
        ),
    )
    seen: dict[int, str] = {}
    for key, port in (
        ("port", gateway.port),
        ("internalPort", gateway.internal_port),
        ("healthPort", gateway.health_port),
    ):
        if port in seen:
            r.add((*path, key), f"port {port} is also the gateway's {seen[port]}")
        seen.setdefault(port, key)
    return gateway
