"""The plane charts: what every built-in topology renders, checked against the contract,
the seed's figures and the Kubernetes 1.32 schemas."""

from __future__ import annotations

import glob
import os
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from choreoctl import __version__
from choreoctl.render import Manifest, Rendered, render_topology
from choreoctl.topology.loader import load_topology
from choreoctl.topology.model import PlaneKind
from tests.unit.crd_schema import crds, instance_errors

BUILTINS = ("single-cluster", "multi-cluster", "multi-region")
CONTROL_NS = "openchoreo-control-plane"
WORKLOADS = ("Deployment", "StatefulSet")


@cache
def builtin(name: str) -> Rendered:
    return render_topology(load_topology(name))


def find(rendered: Rendered, kind: str, name: str, cluster: str | None = None) -> list[Manifest]:
    return [
        m
        for (c, _), ms in sorted(rendered.directories.items())
        for m in ms
        if m.kind == kind and m.name == name and (cluster is None or c == cluster)
    ]


def one(rendered: Rendered, kind: str, name: str, cluster: str | None = None) -> dict[str, Any]:
    found = find(rendered, kind, name, cluster)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0].obj


def pod_specs(rendered: Rendered) -> list[dict[str, Any]]:
    return [m.obj["spec"]["template"]["spec"] for m in rendered.manifests() if m.kind in WORKLOADS]


def container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


# --- every manifest is valid -----------------------------------------------------------


@pytest.mark.parametrize("name", BUILTINS)
def test_core_kinds_pass_kubernetes_validate_strict_1_32(name: str) -> None:
    custom: set[str] = set()
    for m in builtin(name).manifests():
        try:
            kubernetes_validate.validate(m.obj, "1.32.0", strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            custom.add(f"{m.api_version}/{m.kind}")
    # Only custom kinds escape this check; they are validated against their CRDs below.
    assert custom <= {
        "cert-manager.io/v1/Certificate",
        "cert-manager.io/v1/Issuer",
        "openchoreo.dev/v1alpha1/Organization",
        "openchoreo.dev/v1alpha1/Environment",
    }


@pytest.mark.parametrize("name", BUILTINS)
def test_openchoreo_objects_match_our_crds(name: str) -> None:
    ours = [m for m in builtin(name).manifests() if m.api_version == "openchoreo.dev/v1alpha1"]
    assert {m.kind for m in ours} == {"Organization", "Environment"}
    for m in ours:
        assert instance_errors(m.obj, crds()[m.kind]) == [], m.filename


def _cert_manager_crds() -> dict[str, dict[str, Any]]:
    """cert-manager's own CRDs: copied by tests/testenv/build.sh, or in the Go module cache."""
    from tests.testenv.binaries import cache_root

    gomod = os.environ.get("GOMODCACHE") or str(Path.home() / "go" / "pkg" / "mod")
    patterns = (
        f"{cache_root()}/*/crds/cert-manager",
        f"{gomod}/github.com/cert-manager/cert-manager@v1.*/deploy/crds",
    )
    dirs = [d for pattern in patterns for d in sorted(glob.glob(pattern))]
    if not dirs:
        pytest.skip(f"cert-manager CRDs not found ({patterns}); run bash tests/testenv/build.sh")
    found = {}
    for kind, file in (("Certificate", "certificates"), ("Issuer", "issuers")):
        text = Path(dirs[0], f"cert-manager.io_{file}.yaml").read_text()
        found[kind] = yaml.safe_load(text)
    return found


@pytest.mark.parametrize("name", BUILTINS)
def test_cert_manager_objects_match_cert_manager_crds(name: str) -> None:
    schemas = _cert_manager_crds()
    objs = [m for m in builtin(name).manifests() if m.api_version == "cert-manager.io/v1"]
    assert objs
    for m in objs:
        crd = schemas[m.kind]
        (served,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        assert instance_errors(m.obj, {"spec": {"versions": [served]}}) == [], m.filename


# --- the chart ↔ runtime contract ------------------------------------------------------


def test_gateway_deployment_matches_contract() -> None:
    r = builtin("multi-region")
    dep = one(r, "Deployment", "cluster-gateway")
    assert dep["metadata"]["namespace"] == CONTROL_NS
    assert dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == (
        "cluster-gateway"
    )
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "cluster-gateway"
    gw = container(dep, "gateway")
    assert gw["image"] == f"choreoctl/choreoctl:{__version__}"
    assert gw["command"] == ["choreoctl"]
    assert " ".join(gw["args"]) == (
        "gateway serve --port 8443 --internal-port 8444 --health-port 8080"
        " --tls-cert /etc/cluster-gateway/tls/tls.crt --tls-key /etc/cluster-gateway/tls/tls.key"
        " --client-ca /etc/cluster-gateway/tls/ca.crt --heartbeat-interval 30s"
        " --heartbeat-timeout 90s"
    )
    assert gw["volumeMounts"][0]["mountPath"] == "/etc/cluster-gateway/tls"
    assert pod["volumes"][0]["secret"]["secretName"] == "cluster-gateway-tls"
    assert gw["livenessProbe"]["httpGet"]["path"] == "/health"
    assert gw["readinessProbe"]["httpGet"]["path"] == "/ready"
    svc = one(r, "Service", "cluster-gateway")
    assert svc["spec"]["type"] == "ClusterIP"
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert ports == {"wss": 8443, "internal": 8444, "health": 8080}
    ext = one(r, "Service", "cluster-gateway-external")
    assert ext["spec"]["type"] == "LoadBalancer"
    assert [p["port"] for p in ext["spec"]["ports"]] == [8443]


def test_gateway_external_service_only_when_planes_live_elsewhere() -> None:
    assert find(builtin("single-cluster"), "Service", "cluster-gateway-external") == []
    assert find(builtin("multi-cluster"), "Service", "cluster-gateway-external")


def test_controller_manager_matches_contract() -> None:
    dep = one(builtin("single-cluster"), "Deployment", "controller-manager")
    mgr = container(dep, "manager")
    assert mgr["command"] == ["choreoctl"]
    assert " ".join(mgr["args"]) == (
        "controller run --gateway-url"
        f" https://cluster-gateway.{CONTROL_NS}.svc.cluster.local:8444"
        " --client-cert /etc/controller-manager/tls/tls.crt"
        " --client-key /etc/controller-manager/tls/tls.key"
        " --server-ca /etc/controller-manager/tls/ca.crt --health-port 8081"
    )
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "controller-manager"
    assert mgr["volumeMounts"][0]["mountPath"] == "/etc/controller-manager/tls"


@pytest.mark.parametrize("name", BUILTINS)
def test_agents_match_contract(name: str) -> None:
    topology = load_topology(name)
    r = builtin(name)
    for plane in topology.planes:
        if plane.kind is PlaneKind.control:
            continue
        key = r.plane_dirs[(plane.kind, plane.name)]
        (dep,) = [
            m.obj
            for m in r.directories[key]
            if m.kind == "Deployment" and m.name == ("cluster-agent")
        ]
        labels = dep["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "cluster-agent"
        assert labels["app.kubernetes.io/part-of"] == "openchoreo"
        assert labels["openchoreo.dev/plane-type"] == plane.kind.plane_type
        assert labels["openchoreo.dev/plane-id"] == plane.effective_plane_id
        assert dep["metadata"]["namespace"] == plane.namespace
        host = (
            f"cluster-gateway.{topology.control.namespace}.svc.cluster.local"
            if plane.cluster == topology.control.cluster
            else topology.gateway.external_host
        )
        agent = container(dep, "agent")
        assert " ".join(agent["args"]) == (
            f"agent run --server-url wss://{host}:8443/ws --plane-type {plane.kind.plane_type}"
            f" --plane-id {plane.effective_plane_id}"
            " --client-cert /etc/cluster-agent/tls/tls.crt"
            " --client-key /etc/cluster-agent/tls/tls.key"
            " --server-ca /etc/cluster-agent/gateway-ca/ca.crt --health-port 8080"
        )
        mounts = {v["mountPath"]: v["name"] for v in agent["volumeMounts"]}
        volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        tls = volumes[mounts["/etc/cluster-agent/tls"]]
        ca = volumes[mounts["/etc/cluster-agent/gateway-ca"]]
        assert tls["secret"]["secretName"] == "cluster-agent-tls"
        assert ca["configMap"]["name"] == "cluster-gateway-ca"
        cert = [m.obj for m in r.directories[key] if m.name == "cluster-agent-tls"]
        assert cert[0]["spec"]["commonName"] == plane.effective_plane_id
        assert "client auth" in cert[0]["spec"]["usages"]


def test_single_cluster_agents_dial_the_cluster_ip_service() -> None:
    r = builtin("single-cluster")
    for dep in find(r, "Deployment", "cluster-agent"):
        url = container(dep.obj, "agent")["args"][3]
        assert url == f"wss://cluster-gateway.{CONTROL_NS}.svc.cluster.local:8443/ws"


def test_gateway_ca_chain_and_serving_certificate() -> None:
    r = builtin("multi-region")
    assert one(r, "Issuer", "cluster-gateway-selfsigned")["spec"] == {"selfSigned": {}}
    ca = one(r, "Certificate", "cluster-gateway-ca")["spec"]
    assert ca["isCA"] is True and ca["secretName"] == "cluster-gateway-ca"
    issuer = one(r, "Issuer", "cluster-gateway-ca-issuer")["spec"]
    assert issuer == {"ca": {"secretName": "cluster-gateway-ca"}}
    tls = one(r, "Certificate", "cluster-gateway-tls")["spec"]
    assert tls["dnsNames"] == [
        "cluster-gateway",
        f"cluster-gateway.{CONTROL_NS}",
        f"cluster-gateway.{CONTROL_NS}.svc",
        f"cluster-gateway.{CONTROL_NS}.svc.cluster.local",
        "gateway.example.com",
        "localhost",
    ]
    assert tls["ipAddresses"] == ["127.0.0.1"]
    assert "server auth" in tls["usages"]
    client = one(r, "Certificate", "controller-manager-tls")["spec"]
    assert client["issuerRef"]["name"] == "cluster-gateway-ca-issuer"
    assert "client auth" in client["usages"]
    # The trust step writes this ConfigMap; the charts must not.
    assert find(r, "ConfigMap", "cluster-gateway-ca") == []


def test_extra_sans_split_into_dns_names_and_ip_addresses() -> None:
    t = load_topology("multi-cluster")
    t = replace(t, gateway=replace(t.gateway, extra_sans=("gw.internal", "10.0.0.7", "::1")))
    tls = one(render_topology(t), "Certificate", "cluster-gateway-tls")["spec"]
    assert "gw.internal" in tls["dnsNames"] and tls["dnsNames"][-1] == "localhost"
    assert tls["ipAddresses"] == ["127.0.0.1", "10.0.0.7", "::1"]


def test_trust_issuer_choreoctl_renders_no_trust_objects() -> None:
    from choreoctl.topology.model import TLSIssuer

    r = render_topology(replace(load_topology("multi-region"), trust_issuer=TLSIssuer.choreoctl))
    names = {m.name for m in r.manifests() if m.api_version == "cert-manager.io/v1"}
    assert not names & {
        "cluster-gateway-selfsigned",
        "cluster-gateway-ca",
        "cluster-gateway-ca-issuer",
        "cluster-gateway-tls",
        "controller-manager-tls",
        "cluster-agent-selfsigned",
        "cluster-agent-ca",
        "cluster-agent-ca-issuer",
        "cluster-agent-tls",
    }
    # Public certificates still follow each plane's own TLS strategy.
    assert {"control-plane-tls", "apps-wildcard-tls", "ingestion-tls"} <= names
    # The workloads still mount the Secrets choreoctl writes at install.
    dep = one(r, "Deployment", "cluster-gateway")
    assert dep["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] == (
        "cluster-gateway-tls"
    )


def test_default_names_and_namespaces() -> None:
    r = builtin("single-cluster")
    namespaces = {m.name for m in r.manifests() if m.kind == "Namespace"}
    assert namespaces == {
        "openchoreo-control-plane",
        "openchoreo-data-plane",
        "openchoreo-build-plane",
        "openchoreo-observability-plane",
        "default-organization",
    }
    assert len(find(r, "Deployment", "cluster-agent")) == 3
    org = one(r, "Organization", "default-organization")
    assert org["metadata"].get("namespace") is None
    envs = [m.obj for m in r.manifests() if m.kind == "Environment"]
    assert envs and all(e["metadata"]["namespace"] == "default-organization" for e in envs)
