"""Each validation rule, triggered by one override of a valid built-in."""

from __future__ import annotations

import time

import pytest

from choreoctl.errors import TopologyError
from choreoctl.topology.loader import load_topology

CASES = [
    # (built-in, --set overrides, fragment of the expected problem, its field path)
    ("multi-cluster", ["spec.planes.data=[]"], "no data plane", "spec.planes.data"),
    (
        "multi-cluster",
        ["spec.planes.data[0].cluster=nowhere"],
        "cluster 'nowhere' is not declared",
        "spec.planes.data[0].cluster",
    ),
    (
        "multi-cluster",
        ["spec.planes.build.observabilityPlane=logs"],
        "observability plane 'logs' does not exist",
        "spec.planes.build.observabilityPlane",
    ),
    (
        "multi-region",
        ["spec.planes.data[2].publicVirtualHost=us.apps.example.com"],
        "publicVirtualHost 'us.apps.example.com' is already used by spec.planes.data[0]",
        "spec.planes.data[2].publicVirtualHost",
    ),
    (
        "multi-region",
        ["spec.planes.data[1].domains.apps=*.us.apps.example.com"],
        "domain '*.us.apps.example.com' is already used",
        "spec.planes.data[1].domains.apps",
    ),
    (
        "multi-cluster",
        ["spec.planes.control.domains.console=-bad-.example.com"],
        "is not a valid DNS name",
        "spec.planes.control.domains.console",
    ),
    (
        "multi-cluster",
        ["spec.planes.data[0].domains.apps=*.com"],
        "needs at least two labels",
        "spec.planes.data[0].domains.apps",
    ),
    (
        "single-cluster",
        ["spec.clusters[1]={name: other, context: other}", "spec.planes.build.cluster=other"],
        "single-cluster declares 2 clusters",
        "spec.clusters",
    ),
    (
        "single-cluster",
        ["spec.planes.build.namespace=openchoreo-data-plane"],
        "namespace 'openchoreo-data-plane' in cluster 'local' is already used",
        "spec.planes.build.namespace",
    ),
    (
        "multi-cluster",
        ["spec.type=single-cluster"],
        "single-cluster declares 4 clusters",
        "spec.clusters",
    ),
    (
        "multi-region",
        ["spec.clusters[2].region=us-east-1"],
        "region 'us-east-1' already has data plane spec.planes.data[0]",
        "spec.planes.data[1].cluster",
    ),
    (
        "multi-region",
        ["spec.clusters[3].region="],
        "cluster 'data-apac' has no region",
        "spec.clusters[3]",
    ),
    (
        "single-cluster",
        ["spec.loadBalancer.mode=shared"],
        "port 443 on the shared address of cluster 'local' is already used",
        "spec.planes.data[0].loadBalancer.ports.https",
    ),
    (
        "multi-cluster",
        [
            "spec.loadBalancer.mode=shared",
            "spec.planes.control.loadBalancer.ports.https=8443",
        ],
        "port 8443 on the shared address of cluster 'control'",
        "spec.gateway.port",
    ),
    (
        "multi-cluster",
        [
            "spec.planes.control.loadBalancer.address=10.0.0.1",
            "spec.planes.data[0].loadBalancer.address=10.0.0.1",
        ],
        "port 443 on the shared address of 10.0.0.1",
        "spec.planes.data[0].loadBalancer.ports.https",
    ),
    (
        "multi-cluster",
        ["spec.gateway.internalPort=8443"],
        "port 8443 is also the gateway's port",
        "spec.gateway.internalPort",
    ),
    (
        "multi-cluster",
        ["spec.organization.environments[0].dataPlane=prod"],
        "data plane 'prod' does not exist",
        "spec.organization.environments[0].dataPlane",
    ),
    (
        "multi-cluster",
        ["spec.organization.environments[1].name=development"],
        "environment 'development' is already defined",
        "spec.organization.environments[1].name",
    ),
    (
        "multi-cluster",
        ["spec.organization.environments[1].dnsPrefix=dev"],
        "dnsPrefix 'dev' is already used on data plane 'default'",
        "spec.organization.environments[1].dnsPrefix",
    ),
    (
        "multi-cluster",
        ["spec.organization.environments[0].dnsPrefix=dev.team"],
        "is not a DNS label",
        "spec.organization.environments[0].dnsPrefix",
    ),
    (
        "multi-cluster",
        ["spec.gateway.externalHost="],
        "needs an address to dial",
        "spec.gateway.externalHost",
    ),
    (
        "multi-region",
        ["spec.planes.data[1].name=us"],
        "name 'us' is already used by spec.planes.data[0]",
        "spec.planes.data[1].name",
    ),
    (
        "multi-region",
        ["spec.planes.data[1].planeID=us"],
        "planeID 'us' is already used",
        "spec.planes.data[1].planeID",
    ),
    (
        "multi-cluster",
        ["spec.clusters[4]={name: spare, context: spare}"],
        "cluster 'spare' is not used by any plane",
        "spec.clusters[4]",
    ),
    (
        "multi-cluster",
        ["spec.clusters[1].name=control"],
        "cluster 'control' is declared twice",
        "spec.clusters[1].name",
    ),
    (
        "multi-cluster",
        ["spec.planes.control.components.backstage.resources.requests.memory=4Gi"],
        "request 4Gi is more than the limit 2Gi",
        "spec.planes.control.components.backstage.resources.requests.memory",
    ),
    (
        "multi-cluster",
        ["spec.planes.control.components.database.replicas=2"],
        "unknown field 'replicas'",
        "spec.planes.control.components.database.replicas",
    ),
    (
        "multi-cluster",
        ["spec.planes.build.components.registry.storage=0"],
        "storage 0 is not positive",
        "spec.planes.build.components.registry.storage",
    ),
    (
        "multi-cluster",
        ["spec.planes.control.tls.issuer=byo", "spec.planes.control.tls.certFile=/etc/hosts"],
        "certFile and keyFile go together; keyFile is missing",
        "spec.planes.control.tls",
    ),
    (
        "multi-cluster",
        ["spec.planes.control.tls.secretName=mine"],
        "only used with issuer byo",
        "spec.planes.control.tls.secretName",
    ),
    (
        "multi-cluster",
        ["spec.planes.control.tls.issuer=byo", "spec.planes.control.tls.issuerRef.name=x"],
        "issuerRef is only used with issuer cert-manager",
        "spec.planes.control.tls.issuerRef",
    ),
    ("multi-cluster", ["spec.trust.issuer=byo"], "'byo' is not allowed", "spec.trust.issuer"),
    (
        "multi-cluster",
        ["spec.images.registry=https://registry.example.com"],
        "has a scheme",
        "spec.images.registry",
    ),
    (
        "multi-cluster",
        ["spec.planes.build.domains={ingestion: x.example.com}"],
        "unknown field 'domains'",
        "spec.planes.build.domains",
    ),
    (
        "multi-cluster",
        ["spec.planes.control.loadBalancer.address=not-an-ip"],
        "is not an IP address",
        "spec.planes.control.loadBalancer.address",
    ),
    (
        "multi-cluster",
        ["spec.organization.environments[0].isProduction=yes please"],
        "expected true or false",
        "spec.organization.environments[0].isProduction",
    ),
]


@pytest.mark.parametrize(("builtin", "sets", "fragment", "path"), CASES)
def test_rule(builtin: str, sets: list[str], fragment: str, path: str) -> None:
    with pytest.raises(TopologyError) as info:
        load_topology(builtin, sets=sets)
    found = [(p.path, p.line()) for p in info.value.problems]
    assert any(p == path and fragment in text for p, text in found), found


def test_did_you_mean_for_unknown_fields() -> None:
    with pytest.raises(TopologyError) as info:
        load_topology("multi-cluster", sets=["spec.planes.data[0].publicVirtualHots=x.example.com"])
    (problem,) = info.value.problems
    assert problem.hint == 'did you mean "publicVirtualHost"?'


def test_every_problem_at_once() -> None:
    with pytest.raises(TopologyError) as info:
        load_topology(
            "multi-region",
            sets=[
                "spec.planes.data[0].cluster=nowhere",
                "spec.gateway.port=0",
                "spec.organization.name=Acme",
                "spec.planes.control.components.api.replicas=-2",
            ],
        )
    paths = {p.path for p in info.value.problems}
    assert {
        "spec.planes.data[0].cluster",
        "spec.gateway.port",
        "spec.organization.name",
        "spec.planes.control.components.api.replicas",
    } <= paths


def test_no_cascade_after_a_malformed_value() -> None:
    with pytest.raises(TopologyError) as info:
        load_topology("multi-cluster", sets=["spec.planes.data[0].cluster=Bad_Name"])
    assert [p.path for p in info.value.problems] == ["spec.planes.data[0].cluster"]


def test_validation_is_fast() -> None:
    start = time.monotonic()
    for _ in range(20):
        load_topology("multi-region")
    # A hang guard with a wide margin, not a benchmark (see bench/ for figures).
    assert time.monotonic() - start < 20
