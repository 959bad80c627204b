"""What a topology asks of each cluster: summed requests, LoadBalancers, permissions."""

from __future__ import annotations

import dataclasses

from choreoctl.checks.preflight.local import domain_problem
from choreoctl.checks.preflight.needs import (
    cluster_needs,
    needs_cert_manager,
    needs_load_balancer,
    shared_ip_collisions,
)
from choreoctl.checks.preflight.permissions import required_access
from choreoctl.topology.loader import load_topology
from choreoctl.topology.model import (
    TLS,
    LoadBalancer,
    LoadBalancerMode,
    PlaneKind,
    Ports,
    TLSIssuer,
)

MI = 2**20


def test_single_cluster_sums_every_plane_from_the_seed_table() -> None:
    topo = load_topology("single-cluster")
    need = cluster_needs(topo, topo.clusters[0].name)
    # control 500m/768Mi + data 150m/256Mi + build 75m/160Mi + observability 250m/1280Mi
    assert need.cpu_m == 975
    assert need.memory == 2464 * MI
    # database 500Mi + registry 10Gi + podman-cache 10Gi + opensearch 5Gi (PVC-only: one each)
    assert need.storage == 500 * MI + 25 * 1024 * MI
    assert any(line.startswith("control-plane/backstage: 1 ×") for line in need.lines)


def test_overrides_multiply_replicas_by_requests() -> None:
    topo = load_topology(
        "single-cluster",
        sets=[
            "spec.planes.control.components.api.replicas=3",
            "spec.planes.control.components.api.resources.requests.cpu=1",
            "spec.planes.control.components.api.resources.limits.cpu=2",
        ],
    )
    need = cluster_needs(topo, topo.clusters[0].name)
    assert need.cpu_m == 975 - 100 + 3 * 1000


def test_multi_region_puts_each_plane_on_its_cluster() -> None:
    topo = load_topology("multi-region")
    eu = cluster_needs(topo, "data-eu")
    assert (eu.cpu_m, eu.memory, eu.storage) == (150, 256 * MI, 0)
    assert cluster_needs(topo, "nowhere").cpu_m == 0


def test_load_balancer_needs() -> None:
    multi = load_topology("multi-region")
    assert any("cluster gateway" in w for w in needs_load_balancer(multi, "control"))
    assert needs_load_balancer(multi, "data-eu") == ["data-plane 'eu' public endpoint"]
    assert needs_load_balancer(multi, "build") == []
    single = load_topology("single-cluster")
    why = needs_load_balancer(single, single.clusters[0].name)
    assert not any("gateway" in w for w in why)  # agents dial the in-cluster Service


def test_cert_manager_needed_unless_everything_brings_its_own() -> None:
    topo = load_topology("single-cluster")
    name = topo.clusters[0].name
    assert needs_cert_manager(topo, name)
    byo = TLS(issuer=TLSIssuer.byo, secret_name="tls")
    planes = tuple(dataclasses.replace(p, tls=byo) for p in topo.planes)
    own = dataclasses.replace(topo, planes=planes, trust_issuer=TLSIssuer.choreoctl)
    assert needs_cert_manager(own, name) == []
    still = dataclasses.replace(own, trust_issuer=TLSIssuer.cert_manager)
    assert needs_cert_manager(still, name)


def test_shared_ip_collisions_are_listed() -> None:
    topo = load_topology("multi-cluster")
    ctl = topo.control.cluster
    same = LoadBalancer(ports=Ports(https=443, http=80))
    planes = tuple(
        dataclasses.replace(p, cluster=ctl, load_balancer=same)
        if p.kind is not PlaneKind.build
        else p
        for p in topo.planes
    )
    shared = dataclasses.replace(topo, planes=planes, load_balancer_mode=LoadBalancerMode.shared)
    clashes = shared_ip_collisions(shared, ctl)
    assert any(c.startswith("port 443:") for c in clashes)
    assert any(c.startswith("port 80:") for c in clashes)
    apart = tuple(
        dataclasses.replace(p, load_balancer=LoadBalancer(ports=Ports(https=9000 + i, http=0)))
        for i, p in enumerate(planes)
    )
    assert shared_ip_collisions(dataclasses.replace(shared, planes=apart), ctl) == []


def test_required_access_covers_the_install() -> None:
    topo = load_topology("multi-region")
    ctl = {a.line() for a in required_access(topo, "control")}
    assert "create customresourcedefinitions.apiextensions.k8s.io (cluster-wide)" in ctl
    assert "patch dataplanes.openchoreo.dev -n default-organization" in ctl
    assert "create certificates.cert-manager.io -n openchoreo-control-plane" in ctl
    assert "create deployments.apps -n openchoreo-control-plane" in ctl
    assert "delete clusterrolebindings.rbac.authorization.k8s.io (cluster-wide)" in ctl
    eu = {a.line() for a in required_access(topo, "data-eu")}
    assert "create secrets -n openchoreo-data-plane" in eu
    assert not any("customresourcedefinitions" in line for line in eu)
    assert required_access(topo, "nowhere") == []


def test_domain_names() -> None:
    assert domain_problem("api.example.com", False) == ""
    assert domain_problem("*.apps.example.com", True) == ""
    assert "wildcard" in domain_problem("apps.example.com", True)
    assert "wildcard" in domain_problem("*.example.com", False)
    assert "RFC 1123" in domain_problem("Bad_Name.example.com", False)
    assert "RFC 1123" in domain_problem("-x.example.com", False)
    assert "two labels" in domain_problem("intranet", False)
    assert domain_problem("a" * 64 + ".example.com", False)


def test_rbac_rules_evaluation() -> None:
    from choreoctl.checks.preflight.permissions import Access, rules_allow

    admin = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
    assert rules_allow(admin, Access("create", "deployments", "apps", "ns"))
    limited = [
        {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "namespaces"]},
        {
            "verbs": ["create"],
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": ["x"],
        },
    ]
    assert rules_allow(limited, Access("list", "pods"))
    assert not rules_allow(limited, Access("create", "pods"))
    assert not rules_allow(limited, Access("list", "pods", "apps"))
    assert not rules_allow(limited, Access("create", "deployments", "apps", "ns"))  # named only
    assert not rules_allow([], Access("get", "secrets"))
