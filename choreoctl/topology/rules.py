"""Cross-field rules of a topology: references, uniqueness, placement, ports, regions.

Each rule looks at the parsed :class:`~choreoctl.topology.schema.Parsed` topology and
reports through the :class:`~choreoctl.topology.fields.Reader` with ``cascade=True``, so a
value already reported as malformed is not reported again as, say, a dangling reference.
"""

from __future__ import annotations

from collections.abc import Callable

from choreoctl.topology.checks import did_you_mean
from choreoctl.topology.fields import Reader
from choreoctl.topology.model import LoadBalancerMode, Plane, PlaneKind, TopologyType
from choreoctl.topology.schema import Parsed
from choreoctl.topology.yamlsource import Path, format_path

Rule = Callable[[Reader, Parsed], None]


def check_all(r: Reader, parsed: Parsed) -> None:
    """Run every rule; problems go to ``r``."""
    for rule in RULES:
        rule(r, parsed)


def _plane_label(plane: Plane) -> str:
    return f"{plane.kind.value} {plane.name!r}"


def unique_plane_names(r: Reader, parsed: Parsed) -> None:
    """Plane names (CR names) and planeIDs are unique per kind."""
    for attr, field in (("name", "name"), ("effective_plane_id", "planeID")):
        seen: dict[tuple[PlaneKind, str], Path] = {}
        for plane, path in zip(parsed.topology.planes, parsed.plane_paths, strict=True):
            key = (plane.kind, str(getattr(plane, attr)))
            if key in seen:
                r.add(
                    (*path, field),
                    f"{field} {key[1]!r} is already used by {format_path(seen[key])}",
                    hint=f"give every {plane.kind.value} its own {field}",
                    cascade=True,
                )
            seen.setdefault(key, path)


def clusters_exist(r: Reader, parsed: Parsed) -> None:
    """Every plane names a declared cluster; every declared cluster is used and unique."""
    t = parsed.topology
    names = [c.name for c in t.clusters]
    if not names:
        r.add(("spec", "clusters"), "no clusters", expected="at least one cluster", cascade=True)
    seen: set[str] = set()
    for cluster, path in zip(t.clusters, parsed.cluster_paths, strict=True):
        if cluster.name in seen:
            r.add((*path, "name"), f"cluster {cluster.name!r} is declared twice", cascade=True)
        seen.add(cluster.name)
    used = {p.cluster for p in t.planes}
    for plane, path in zip(t.planes, parsed.plane_paths, strict=True):
        if plane.cluster and plane.cluster not in names:
            r.add(
                (*path, "cluster"),
                f"cluster {plane.cluster!r} is not declared in spec.clusters",
                hint=did_you_mean(plane.cluster, names),
                cascade=True,
            )
    if any(path[:2] == ("spec", "planes") for path in r.flagged):
        return  # a malformed plane or reference: "unused" would only repeat it
    for cluster, path in zip(t.clusters, parsed.cluster_paths, strict=True):
        if cluster.name not in used and names:
            r.add(
                path,
                f"cluster {cluster.name!r} is not used by any plane",
                hint="remove it, or place a plane in it",
                cascade=True,
            )


def observability_refs(r: Reader, parsed: Parsed) -> None:
    """observabilityPlane references name the topology's observability plane."""
    t = parsed.topology
    obs = [p.name for p in t.planes_of(PlaneKind.observability)]
    for plane, path in zip(t.planes, parsed.plane_paths, strict=True):
        if plane.observability_plane and plane.observability_plane not in obs:
            r.add(
                (*path, "observabilityPlane"),
                f"observability plane {plane.observability_plane!r} does not exist",
                hint=did_you_mean(plane.observability_plane, obs)
                if obs
                else "add spec.planes.observability, or remove this reference",
                cascade=True,
            )


def environments(r: Reader, parsed: Parsed) -> None:
    """Environments: unique names, existing data planes, DNS prefixes unique per data plane."""
    t = parsed.topology
    data = [p.name for p in t.planes_of(PlaneKind.data)]
    names: dict[str, Path] = {}
    prefixes: dict[tuple[str, str], Path] = {}
    for env, path in zip(t.environments, parsed.env_paths, strict=True):
        if env.name in names and env.name:
            r.add(
                (*path, "name"),
                f"environment {env.name!r} is already defined at {format_path(names[env.name])}",
                cascade=True,
            )
        names.setdefault(env.name, path)
        if env.data_plane and env.data_plane not in data:
            r.add(
                (*path, "dataPlane"),
                f"data plane {env.data_plane!r} does not exist",
                hint=did_you_mean(env.data_plane, data),
                cascade=True,
            )
        key = (env.data_plane, env.dns_prefix)
        if env.dns_prefix and key in prefixes:
            r.add(
                (*path, "dnsPrefix"),
                f"dnsPrefix {env.dns_prefix!r} is already used on data plane {env.data_plane!r}",
                hint="environments on one data plane need distinct DNS prefixes",
                cascade=True,
            )
        prefixes.setdefault(key, path)


def unique_hosts(r: Reader, parsed: Parsed) -> None:
    """Every public host name is used once; publicVirtualHost is unique across data planes."""
    seen: dict[str, Path] = {}
    for plane, path in zip(parsed.topology.planes, parsed.plane_paths, strict=True):
        hosts = [((*path, "domains", k), v) for k, v in plane.domains.items()]
        if plane.public_virtual_host:
            hosts.append(((*path, "publicVirtualHost"), plane.public_virtual_host))
        for where, host in hosts:
            if host in seen:
                pvh = where[-1] == "publicVirtualHost"
                r.add(
                    where,
                    f"{'publicVirtualHost' if pvh else 'domain'} {host!r} is already used by "
                    f"{format_path(seen[host])}",
                    hint="every data plane needs its own publicVirtualHost"
                    if pvh
                    else "every plane endpoint needs its own host name",
                    cascade=True,
                )
            seen.setdefault(host, where)


def placement(r: Reader, parsed: Parsed) -> None:
    """Namespaces distinct per cluster; single-cluster on one cluster; multi-* on several."""
    t = parsed.topology
    where: dict[tuple[str, str], Path] = {}
    for plane, path in zip(t.planes, parsed.plane_paths, strict=True):
        key = (plane.cluster, plane.namespace)
        if key in where:
            r.add(
                (*path, "namespace"),
                f"namespace {plane.namespace!r} in cluster {plane.cluster!r} is already used "
                f"by {format_path(where[key])}",
                hint="planes sharing a cluster need distinct namespaces",
                cascade=True,
            )
        where.setdefault(key, path)
    if t.type is TopologyType.single_cluster and len(t.clusters) > 1:
        r.add(
            ("spec", "clusters"),
            f"single-cluster declares {len(t.clusters)} clusters",
            expected="exactly one cluster",
            hint="use type multi-cluster to spread planes over clusters",
            cascade=True,
        )
    if t.type is not TopologyType.single_cluster and len(t.clusters) == 1:
        r.add(
            ("spec", "type"),
            f"{t.type.value} declares only one cluster",
            expected="two or more clusters",
            hint="use type single-cluster for one cluster",
            cascade=True,
        )


def regions(r: Reader, parsed: Parsed) -> None:
    """multi-region: every cluster has a region; data planes sit in distinct regions."""
    t = parsed.topology
    if t.type is not TopologyType.multi_region:
        return
    region = {c.name: c.region for c in t.clusters}
    for cluster, path in zip(t.clusters, parsed.cluster_paths, strict=True):
        if not cluster.region:
            r.add(
                path,
                f"cluster {cluster.name!r} has no region",
                "region: us-east-1 or similar",
                hint="multi-region needs a region on every cluster",
                cascade=True,
            )
    seen: dict[str, Path] = {}
    for plane, path in zip(t.planes, parsed.plane_paths, strict=True):
        reg = region.get(plane.cluster, "")
        if plane.kind is not PlaneKind.data or not reg:
            continue
        if reg in seen:
            r.add(
                (*path, "cluster"),
                f"region {reg!r} already has data plane {format_path(seen[reg])}",
                hint="multi-region runs one data plane per region",
                cascade=True,
            )
        seen.setdefault(reg, path)


def gateway_reachable(r: Reader, parsed: Parsed) -> None:
    """Planes outside the control plane's cluster need gateway.externalHost to dial."""
    t = parsed.topology
    control = t.planes_of(PlaneKind.control)
    if not control or t.gateway.external_host:
        return
    remote = [p for p in t.planes if p.cluster != control[0].cluster]
    if remote:
        r.add(
            ("spec", "gateway", "externalHost"),
            f"{_plane_label(remote[0])} is in another cluster than the control plane, "
            "so its agent needs an address to dial",
            expected="a DNS name or IP of the control plane's gateway",
            hint="set spec.gateway.externalHost, e.g. gateway.example.com",
            cascade=True,
        )


def ports(r: Reader, parsed: Parsed) -> None:
    """No two services on one IP share a port (shared mode: one IP per cluster)."""
    t = parsed.topology
    control = t.planes_of(PlaneKind.control)
    remote = bool(control) and any(p.cluster != control[0].cluster for p in t.planes)
    taken: dict[tuple[str, int], Path] = {}
    for plane, path in zip(t.planes, parsed.plane_paths, strict=True):
        if plane.kind is PlaneKind.build:
            continue  # no inbound ports
        if t.load_balancer_mode is LoadBalancerMode.shared:
            ip = f"cluster {plane.cluster!r}"
        elif plane.load_balancer.address:
            ip = plane.load_balancer.address
        else:
            continue  # its own address from the provider
        lbp = (*path, "loadBalancer", "ports")
        used = [(lbp + ("https",), plane.load_balancer.ports.https)]
        if plane.load_balancer.ports.http:
            used.append((lbp + ("http",), plane.load_balancer.ports.http))
        if plane.kind is PlaneKind.control and remote:
            used.append((("spec", "gateway", "port"), t.gateway.port))
        for where, port in used:
            if (ip, port) in taken:
                r.add(
                    where,
                    f"port {port} on the shared address of {ip} is already used by "
                    f"{format_path(taken[(ip, port)])}",
                    hint="planes sharing an IP need distinct ports "
                    "(set loadBalancer.ports), or use loadBalancer.mode dedicated",
                    cascade=True,
                )
            taken.setdefault((ip, port), where)


def data_planes(r: Reader, parsed: Parsed) -> None:
    """At least one data plane (the schema requires the key; this catches an empty list)."""
    if not parsed.topology.planes_of(PlaneKind.data):
        r.add(
            ("spec", "planes", "data"),
            "no data plane",
            expected="at least one data plane",
            hint="applications run in data planes; add one under spec.planes.data",
            cascade=True,
        )


RULES: tuple[Rule, ...] = (
    data_planes,
    unique_plane_names,
    clusters_exist,
    placement,
    regions,
    observability_refs,
    environments,
    unique_hosts,
    gateway_reachable,
    ports,
)
