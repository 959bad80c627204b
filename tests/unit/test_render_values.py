"""Chart values from topology settings: figures, images, load balancers, TLS strategies."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from choreoctl import __version__
from choreoctl.errors import RenderError
from choreoctl.render import render_topology, write_rendered
from choreoctl.render.charts import render_template
from choreoctl.render.images import DEFAULT_IMAGES
from choreoctl.topology.loader import load_topology
from choreoctl.topology.model import Images
from tests.unit.render_topologies import multi_region
from tests.unit.test_render import builtin, container, find, one, pod_specs

DIGEST = "sha256:" + "ab" * 32


def _resources(obj: dict[str, Any], name: str) -> tuple[str, str, str, str]:
    r = container(obj, name)["resources"]
    return (
        r["requests"]["cpu"],
        r["limits"]["cpu"],
        r["requests"]["memory"],
        r["limits"]["memory"],
    )


def test_seed_figures_are_the_defaults() -> None:
    r = builtin("multi-region")
    expected = {
        ("backstage", "backstage"): ("200m", "2000m", "256Mi", "2Gi"),
        ("openchoreo-api", "api"): ("100m", "500m", "256Mi", "512Mi"),
        ("controller-manager", "manager"): ("100m", "500m", "128Mi", "512Mi"),
        ("cluster-gateway", "gateway"): ("100m", "500m", "128Mi", "256Mi"),
        ("argo-workflow-controller", "workflow-controller"): ("25m", "50m", "32Mi", "64Mi"),
        ("observer", "observer"): ("100m", "200m", "128Mi", "200Mi"),
    }
    for (deployment, name), figures in expected.items():
        assert _resources(one(r, "Deployment", deployment), name) == figures, deployment
    for dep in find(r, "Deployment", "kgateway"):
        assert _resources(dep.obj, "kgateway") == ("100m", "200m", "128Mi", "256Mi")
    for dep in find(r, "Deployment", "cluster-agent"):
        assert _resources(dep.obj, "agent") == ("50m", "100m", "128Mi", "256Mi")
    os_ = one(r, "StatefulSet", "opensearch")
    assert _resources(os_, "opensearch") == ("100m", "1000m", "1Gi", "1Gi")
    assert os_["spec"]["replicas"] == 1
    (claim,) = os_["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    pvcs = {
        m.name: m.obj["spec"]["resources"]["requests"]["storage"]
        for m in r.manifests()
        if m.kind == "PersistentVolumeClaim"
    }
    assert pvcs == {
        "openchoreo-database": "500Mi",
        "registry-storage": "10Gi",
        "podman-cache": "10Gi",
    }


def test_component_overrides_reach_the_manifests() -> None:
    sets = (
        "spec.planes.observability.components.opensearch.replicas=3",
        "spec.planes.observability.components.opensearch.storage=20Gi",
        "spec.planes.control.components.backstage.resources.limits.memory=4Gi",
        "spec.planes.build.components.registry.storage=50Gi",
    )
    r = render_topology(load_topology("multi-region", sets=sets))
    os_ = one(r, "StatefulSet", "opensearch")
    assert os_["spec"]["replicas"] == 3
    assert os_["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "20Gi"
    }
    env = {e["name"]: e.get("value") for e in container(os_, "opensearch")["env"]}
    assert env["cluster.initial_cluster_manager_nodes"] == "opensearch-0,opensearch-1,opensearch-2"
    assert "discovery.type" not in env
    assert _resources(one(r, "Deployment", "backstage"), "backstage")[3] == "4Gi"
    pvc = one(r, "PersistentVolumeClaim", "registry-storage")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"


# --- images ----------------------------------------------------------------------------


def _images(r: Any) -> list[str]:
    return [c["image"] for spec in pod_specs(r) for c in spec["containers"]]


def test_default_images_have_no_registry_host_and_a_pinned_tag() -> None:
    images = _images(builtin("multi-region"))
    assert images
    for image in images:
        repo, _, tag = image.rpartition(":")
        assert tag and "@" not in image, image
        assert "." not in repo.split("/")[0], f"{image} names a registry host"
    assert f"choreoctl/choreoctl:{__version__}" in images


def test_registry_prefixes_every_image_and_pull_secrets_reach_every_pod() -> None:
    sets = (
        "spec.images.registry=registry.corp:5000/mirror",
        "spec.images.pullSecrets=[corp-pull, backup-pull]",
        "spec.images.tag=1.2.3",
        f"spec.images.digests.opensearch={DIGEST}",
    )
    r = render_topology(load_topology("multi-region", sets=sets))
    for image in _images(r):
        assert image.startswith("registry.corp:5000/mirror/"), image
    assert "registry.corp:5000/mirror/choreoctl/choreoctl:1.2.3" in _images(r)
    os_image = container(one(r, "StatefulSet", "opensearch"), "opensearch")["image"]
    assert os_image == f"registry.corp:5000/mirror/opensearchproject/opensearch:2.19.1@{DIGEST}"
    specs = pod_specs(r)
    assert len(specs) == len([m for m in r.manifests() if m.kind in ("Deployment", "StatefulSet")])
    for spec in specs:
        assert spec["imagePullSecrets"] == [{"name": "corp-pull"}, {"name": "backup-pull"}]


def test_no_pull_secrets_by_default() -> None:
    assert all("imagePullSecrets" not in s for s in pod_specs(builtin("single-cluster")))


def test_bad_image_settings_are_reported_together() -> None:
    images = Images(digests={"nope": DIGEST, "api": "sha256:short"}, tag="bad tag!")
    with pytest.raises(RenderError) as e:
        render_topology(replace(multi_region(), images=images))
    paths = {p.path for p in e.value.problems}
    assert paths == {"images.digests.nope", "images.digests.api", "images.tag"}
    assert e.value.exit_code == 2
    assert any(
        "one of " + ", ".join(sorted(DEFAULT_IMAGES)) in p.expected for p in e.value.problems
    )


# --- load balancers ----------------------------------------------------------------------


def _ports(svc: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["port"] for p in svc["spec"]["ports"]}


def test_dedicated_load_balancers_on_443_and_80() -> None:
    r = builtin("multi-region")
    control = one(r, "Service", "control-plane-ingress")
    assert control["spec"]["type"] == "LoadBalancer"
    assert _ports(control) == {"https": 443, "http": 80}
    for svc in find(r, "Service", "gateway-external"):
        assert _ports(svc.obj) == {"https": 443, "http": 80}
    ingestion = one(r, "Service", "opensearch-ingestion")
    assert _ports(ingestion) == {"https": 443}
    assert all("annotations" not in m.obj["metadata"] for m in r.manifests() if m.kind == "Service")
    # The build plane has no inbound ports.
    key = r.plane_dirs[next(k for k in r.plane_dirs if k[0].value == "build-plane")]
    assert [
        m
        for m in r.directories[key]
        if m.kind == "Service" and m.obj["spec"].get("type") == "LoadBalancer"
    ] == []


def test_shared_load_balancer_uses_the_topology_ports() -> None:
    sets = (
        "spec.loadBalancer.mode=shared",
        "spec.planes.control.loadBalancer.address=192.0.2.10",
        "spec.planes.control.loadBalancer.ports.https=443",
        "spec.planes.control.loadBalancer.ports.http=0",
        "spec.planes.data[0].loadBalancer.address=192.0.2.10",
        "spec.planes.data[0].loadBalancer.ports.https=8443",
        "spec.planes.data[0].loadBalancer.ports.http=8080",
        "spec.planes.observability.loadBalancer.address=192.0.2.10",
        "spec.planes.observability.loadBalancer.ports.https=9443",
    )
    r = render_topology(load_topology("single-cluster", sets=sets))
    control = one(r, "Service", "control-plane-ingress")
    data = one(r, "Service", "gateway-external")
    logs = one(r, "Service", "opensearch-ingestion")
    assert _ports(control) == {"https": 443}
    assert _ports(data) == {"https": 8443, "http": 8080}
    assert _ports(logs) == {"https": 9443}
    for svc in (control, data, logs):
        assert svc["spec"]["loadBalancerIP"] == "192.0.2.10"
        key = svc["metadata"]["annotations"]["metallb.universe.tf/allow-shared-ip"]
        assert key == "choreoctl-single-cluster"


# --- TLS strategies ----------------------------------------------------------------------


def test_cert_manager_default_is_a_self_signed_chain_with_the_plane_domains() -> None:
    r = builtin("multi-region")
    cert = one(r, "Certificate", "control-plane-tls")["spec"]
    assert cert["dnsNames"] == ["console.example.com", "api.example.com", "identity.example.com"]
    assert cert["issuerRef"] == {
        "name": "openchoreo-ca-issuer",
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    us = one(r, "Certificate", "apps-wildcard-tls", "data-us")["spec"]
    assert us["dnsNames"] == ["*.us.apps.example.com", "us.apps.example.com"]
    logs = one(r, "Certificate", "ingestion-tls")["spec"]
    assert logs["dnsNames"] == ["logs.example.com"]


def test_issuer_ref_replaces_the_self_signed_chain() -> None:
    sets = ("spec.planes.control.tls.issuerRef.name=letsencrypt",)
    r = render_topology(load_topology("multi-region", sets=sets))
    cert = one(r, "Certificate", "control-plane-tls")["spec"]
    assert cert["issuerRef"] == {
        "name": "letsencrypt",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    key = r.plane_dirs[next(k for k in r.plane_dirs if k[0].value == "control-plane")]
    names = {m.name for m in r.directories[key]}
    assert "openchoreo-selfsigned" not in names and "openchoreo-ca" not in names


def test_byo_secret_renders_nothing_and_workloads_mount_it() -> None:
    sets = ("spec.planes.control.tls.issuer=byo", "spec.planes.control.tls.secretName=corp-tls")
    r = render_topology(load_topology("multi-region", sets=sets))
    assert find(r, "Certificate", "control-plane-tls") == []
    assert find(r, "Secret", "control-plane-tls") == []
    volumes = one(r, "Deployment", "backstage")["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "tls", "secret": {"secretName": "corp-tls"}}]


def test_byo_files_become_a_tls_secret(tmp_path: Path) -> None:
    import base64

    cert = "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n"
    key = "-----BEGIN PRIVATE KEY-----\nMIIBkey\n-----END PRIVATE KEY-----\n"
    (tmp_path / "tls.crt").write_text(cert)
    (tmp_path / "tls.key").write_text(key)
    sets = (
        "spec.planes.data[0].tls.issuer=byo",
        f"spec.planes.data[0].tls.certFile={tmp_path / 'tls.crt'}",
        f"spec.planes.data[0].tls.keyFile={tmp_path / 'tls.key'}",
    )
    r = render_topology(load_topology("multi-region", sets=sets))
    secret = one(r, "Secret", "apps-wildcard-tls")
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]).decode() == cert
    assert base64.b64decode(secret["data"]["tls.key"]).decode() == key
    assert find(r, "Certificate", "apps-wildcard-tls", "data-us") == []
    assert len(find(r, "Certificate", "apps-wildcard-tls")) == 2  # eu and apac unchanged
    write_rendered(r, tmp_path / "out")
    written = tmp_path / "out" / "data-us" / "data-plane" / "secret-apps-wildcard-tls.yaml"
    assert written.stat().st_mode & 0o777 == 0o600


def test_byo_file_that_is_not_pem_is_a_render_error(tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_text("not a certificate")
    (tmp_path / "tls.key").write_text("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    sets = (
        "spec.planes.control.tls.issuer=byo",
        f"spec.planes.control.tls.certFile={tmp_path / 'tls.crt'}",
        f"spec.planes.control.tls.keyFile={tmp_path / 'tls.key'}",
    )
    with pytest.raises(RenderError) as e:
        render_topology(load_topology("multi-region", sets=sets))
    assert "is not PEM" in e.value.message
    assert e.value.problems[0].path == "planes.control-plane.tls.certFile"


def test_planes_in_other_clusters_need_an_external_gateway_host() -> None:
    t = multi_region()
    with pytest.raises(RenderError) as e:
        render_topology(replace(t, gateway=replace(t.gateway, external_host="")))
    assert e.value.problems[0].path == "gateway.externalHost"
    assert "gateway.externalHost" in e.value.hint


def test_a_template_using_an_unknown_value_is_a_render_error() -> None:
    with pytest.raises(RenderError) as e:
        render_template("data-plane/kgateway.yaml.j2", {"plane": {"namespace": "x"}})
    assert "does not provide" in e.value.message


def test_two_planes_of_a_kind_in_one_cluster_get_their_own_directories() -> None:
    t = multi_region()
    us = t.plane("us")
    second = replace(
        us,
        name="us-2",
        namespace="openchoreo-data-plane-2",
        public_virtual_host="us2.apps.example.com",
    )
    r = render_topology(replace(t, planes=(*t.planes, second)))
    assert r.plane_dirs[(us.kind, "us")] == ("us", "data-plane-us")
    assert r.plane_dirs[(us.kind, "us-2")] == ("us", "data-plane-us-2")
    roles = [m.name for m in r.directories[("us", "data-plane-us-2")] if m.kind == "ClusterRole"]
    assert "openchoreo-cluster-agent-openchoreo-data-plane-2" in roles


def test_two_planes_in_one_namespace_are_refused() -> None:
    t = multi_region()
    clash = replace(t.plane("us"), name="us-2", public_virtual_host="us2.apps.example.com")
    with pytest.raises(RenderError) as e:
        render_topology(replace(t, planes=(*t.planes, clash)))
    assert e.value.problems[0].path == "planes.us-2.namespace"
