"""Self-tests of the test clusters: they must behave like real Kubernetes where tests rely on it.

Each test works in a fresh namespace of the session clusters, except the ones that need
clusters with other options (no LoadBalancer/StorageClass, four at once, own etcd).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from cryptography import x509

from tests.testenv import (
    K8S_VERSION,
    ClusterSet,
    ClusterSpec,
    KubectlFailed,
    TestCluster,
    locate,
)

pytestmark = pytest.mark.cluster


def _wait(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll until ``probe`` returns something truthy; fail the test with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _get(c: TestCluster, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(c.kubectl("get", *args, "-o", "json").stdout)
    return out


def _apply(c: TestCluster, ns: str, docs: list[dict[str, Any]], *flags: str) -> None:
    c.kubectl("apply", "-n", ns, *flags, "-f", "-", input=yaml.safe_dump_all(docs))


@pytest.fixture
def ns(cluster: TestCluster) -> Iterator[str]:
    name = f"te-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_servers_report_the_pinned_version(clusters: ClusterSet) -> None:
    for c in clusters:
        version = json.loads(c.kubectl("version", "-o", "json").stdout)["serverVersion"]
        assert version["gitVersion"] == K8S_VERSION, c.name


def test_nodes_have_the_spec_capacity_and_region(clusters: ClusterSet) -> None:
    for c in clusters:
        nodes = _get(c, "nodes")["items"]
        assert len(nodes) == c.spec.nodes == 3
        for n in nodes:
            assert n["status"]["allocatable"]["cpu"] == c.spec.cpu
            assert n["status"]["allocatable"]["memory"] == c.spec.memory
            assert n["metadata"]["labels"]["topology.kubernetes.io/region"] == c.spec.region
            ready = [x for x in n["status"]["conditions"] if x["type"] == "Ready"]
            assert ready and ready[0]["status"] == "True"
    assert [c.spec.region for c in clusters] == ["us", "eu", "apac"]


def test_clusters_are_isolated_from_each_other(clusters: ClusterSet) -> None:
    name = f"iso-{uuid.uuid4().hex[:8]}"
    clusters["alpha"].kubectl("create", "configmap", name, "-n", "default")
    try:
        assert clusters["beta"].kubectl("get", "configmap", name, check=False).returncode != 0
    finally:
        clusters["alpha"].kubectl("delete", "configmap", name, "-n", "default")
    assert len({c.server for c in clusters}) == len(clusters)


def test_deployment_becomes_available(cluster: TestCluster, ns: str) -> None:
    cluster.kubectl("create", "deployment", "web", "-n", ns, "--image=nginx", "--replicas=3")
    cluster.kubectl(
        "wait", "-n", ns, "--for=condition=Available", "deployment/web", "--timeout=90s"
    )
    pods = _get(cluster, "pods", "-n", ns)["items"]
    assert len(pods) == 3
    assert all(p["status"]["phase"] == "Running" for p in pods)
    assert {p["spec"]["nodeName"] for p in pods} <= {f"alpha-node-{i}" for i in range(3)}


def test_crd_established_and_cel_rule_rejects_update(cluster: TestCluster, ns: str) -> None:
    group = f"t{uuid.uuid4().hex[:8]}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "ref": {"type": "string"},
                                        "size": {"type": "integer"},
                                    },
                                    "x-kubernetes-validations": [
                                        {"rule": "self.size <= 10", "message": "size too big"},
                                        {
                                            "rule": "self.ref == oldSelf.ref",
                                            "message": "ref is immutable",
                                        },
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    _apply(cluster, ns, [crd])
    try:
        cluster.kubectl(
            "wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=60s"
        )
        widget = {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"ref": "a", "size": 1},
        }
        _apply(cluster, ns, [widget])
        widget["spec"] = {"ref": "b", "size": 1}
        with pytest.raises(KubectlFailed) as err:
            _apply(cluster, ns, [widget])
        assert "ref is immutable" in err.value.stderr
        widget["spec"] = {"ref": "a", "size": 11}
        with pytest.raises(KubectlFailed) as err:
            _apply(cluster, ns, [widget])
        assert "size too big" in err.value.stderr
    finally:
        cluster.kubectl("delete", "crd", f"widgets.{group}", "--wait=false")


def test_server_side_apply_reports_conflict(cluster: TestCluster, ns: str) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "1"}}
    _apply(cluster, ns, [cm], "--server-side", "--field-manager=first")
    cm["data"] = {"k": "2"}
    with pytest.raises(KubectlFailed) as err:
        _apply(cluster, ns, [cm], "--server-side", "--field-manager=second")
    assert "conflict" in err.value.stderr.lower() and "first" in err.value.stderr
    _apply(cluster, ns, [cm], "--server-side", "--field-manager=second", "--force-conflicts")
    assert _get(cluster, "configmap", "c", "-n", ns)["data"] == {"k": "2"}


def _lb_ip(c: TestCluster, ns: str, name: str) -> str | None:
    ingress = _get(c, "service", name, "-n", ns)["status"].get("loadBalancer", {}).get("ingress")
    return str(ingress[0]["ip"]) if ingress else None


def test_load_balancer_service_gets_a_loopback_address(cluster: TestCluster, ns: str) -> None:
    cluster.kubectl("create", "service", "loadbalancer", "gw", "-n", ns, "--tcp=443:8443")
    ip = _wait("a LoadBalancer address", lambda: _lb_ip(cluster, ns, "gw"))
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8")
    assert ip.startswith(cluster.lb_prefix + ".")
    cluster.kubectl("create", "service", "loadbalancer", "gw2", "-n", ns, "--tcp=80:8080")
    ip2 = _wait("a second address", lambda: _lb_ip(cluster, ns, "gw2"))
    assert ip2 != ip
    patch = '{"spec":{"type":"ClusterIP"}}'
    cluster.kubectl("patch", "service", "gw2", "-n", ns, "-p", patch)
    _wait("the address to be released", lambda: _lb_ip(cluster, ns, "gw2") is None)


def test_limited_user_is_denied_where_rbac_says_so(cluster: TestCluster) -> None:
    limited = ["--context", cluster.limited_context]
    assert cluster.kubectl(*limited, "get", "pods", "-A").returncode == 0
    assert cluster.kubectl(*limited, "get", "nodes").returncode == 0
    denied = cluster.kubectl(*limited, "get", "secrets", "-A", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    denied = cluster.kubectl(*limited, "create", "namespace", "nope", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    can = cluster.kubectl(*limited, "auth", "can-i", "create", "deployments", check=False)
    assert can.stdout.strip() == "no"


def _pvc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }


def test_pvc_is_bound_with_the_default_class(cluster: TestCluster, ns: str) -> None:
    _apply(cluster, ns, [_pvc("data")])
    pvc = _wait(
        "PVC Bound",
        lambda: (
            (p := _get(cluster, "pvc", "data", "-n", ns))["status"].get("phase") == "Bound" and p
        ),
    )
    assert pvc["spec"]["storageClassName"] == "standard"
    pv = _get(cluster, "pv", pvc["spec"]["volumeName"])
    assert pv["spec"]["capacity"]["storage"] == "2Gi"
    assert pv["spec"]["claimRef"]["namespace"] == ns


def test_cert_manager_issues_self_signed_and_ca_certificates(cluster: TestCluster, ns: str) -> None:
    if not cluster.spec.cert_manager:
        pytest.skip(f"cert-manager is not built here: {locate().cert_manager_error}")
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "selfsigned"},
            "spec": {"selfSigned": {}},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "root"},
            "spec": {
                "isCA": True,
                "commonName": "testenv-root",
                "secretName": "root",
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": "selfsigned", "kind": "Issuer"},
            },
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "ca"},
            "spec": {"ca": {"secretName": "root"}},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "leaf"},
            "spec": {
                "dnsNames": ["gateway.example.test"],
                "secretName": "leaf",
                "issuerRef": {"name": "ca", "kind": "Issuer"},
            },
        },
    ]
    _apply(cluster, ns, docs)
    cluster.kubectl("wait", "-n", ns, "--for=condition=Ready", "certificate/leaf", "--timeout=90s")
    secret = _get(cluster, "secret", "leaf", "-n", ns)["data"]
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["tls.crt"]))
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["ca.crt"]))
    assert ca.subject.rfc4514_string() == "CN=testenv-root"
    assert leaf.issuer == ca.subject
    leaf.verify_directly_issued_by(ca)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gateway.example.test"]


def test_cluster_without_load_balancer_or_storage_class(
    make_clusters: Callable[..., ClusterSet],
) -> None:
    spec = ClusterSpec(
        "bare", nodes=1, cpu="1", memory="1Gi", load_balancer=False, storage_class=False
    )
    c = make_clusters(spec)["bare"]
    (node,) = _get(c, "nodes")["items"]
    assert node["status"]["allocatable"]["cpu"] == "1"
    assert _get(c, "storageclasses")["items"] == []
    c.kubectl("create", "service", "loadbalancer", "gw", "-n", "default", "--tcp=443:8443")
    _apply(c, "default", [_pvc("data")])
    time.sleep(5)  # what the allocator and kwok need to act when they exist (~1 s)
    assert _lb_ip(c, "default", "gw") is None
    assert _get(c, "pvc", "data", "-n", "default")["status"]["phase"] == "Pending"


def test_four_clusters_start_concurrently_and_etcd_can_be_killed(
    make_clusters: Callable[..., ClusterSet],
) -> None:
    specs = [ClusterSpec(f"multi{i}", nodes=2, region=f"r{i}") for i in range(3)]
    specs.append(ClusterSpec("multi3", nodes=2, region="r3", own_etcd=True))
    cs = make_clusters(*specs)
    assert sorted(cs.clusters) == [s.name for s in specs]
    contexts = {ctx["name"] for ctx in yaml.safe_load(cs.kubeconfig.read_text())["contexts"]}
    assert contexts == {s.name for s in specs} | {f"{s.name}-limited" for s in specs}
    for c in cs:
        assert len(_get(c, "nodes")["items"]) == 2
        assert c.rss_kib() > 0
    victim = cs["multi3"]
    victim.kill_etcd()
    failed = victim.kubectl("get", "--raw=/readyz", check=False, timeout=60)
    assert failed.returncode != 0
    assert cs["multi0"].kubectl("get", "--raw=/readyz").stdout.strip() == "ok"
