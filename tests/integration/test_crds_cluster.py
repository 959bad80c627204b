"""The CRDs and the rendered manifests against a real API server.

The unit tests check schemas offline; here the API server itself accepts the CRDs as
structural, evaluates their CEL rules, prints the columns, and validates every object of
a render (server-side dry run with strict field validation).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from choreoctl.render import render_topology, write_rendered
from choreoctl.render.charts import templates_root
from choreoctl.topology.loader import load_topology
from tests.testenv import KubectlFailed, TestCluster

pytestmark = pytest.mark.cluster

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KINDS = ("organizations", "environments", "dataplanes", "buildplanes", "observabilityplanes")


def apply_crds(cluster: TestCluster) -> None:
    crds = Path(str(templates_root() / "crds"))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    names = [f"crd/{k}.openchoreo.dev" for k in KINDS]
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)


@pytest.fixture
def namespace(cluster: TestCluster) -> str:
    apply_crds(cluster)
    name = f"crd-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name  # type: ignore[misc]
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def create(cluster: TestCluster, obj: dict[str, object]) -> None:
    cluster.kubectl("create", "-f", "-", input=json.dumps(obj))


def rejected(cluster: TestCluster, *args: str, input: str | None = None) -> str:
    with pytest.raises(KubectlFailed) as e:
        cluster.kubectl(*args, input=input)
    return str(e.value.stderr)


def plane(kind: str, name: str, ns: str, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": {"planeID": name, "clusterAgent": {"clientCA": {"value": PEM}}, **spec},
    }


def test_environment_data_plane_ref_is_immutable(cluster: TestCluster, namespace: str) -> None:
    env = {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": "dev", "namespace": namespace},
        "spec": {"dataPlaneRef": "us", "gateway": {"dnsPrefix": "dev"}},
    }
    create(cluster, env)
    patch = json.dumps({"spec": {"dataPlaneRef": "eu"}})
    err = rejected(
        cluster, "patch", "environment", "dev", "-n", namespace, "--type=merge", "-p", patch
    )
    assert "dataPlaneRef is immutable" in err
    remove = json.dumps([{"op": "remove", "path": "/spec/dataPlaneRef"}])
    err = rejected(
        cluster, "patch", "environment", "dev", "-n", namespace, "--type=json", "-p", remove
    )
    assert "dataPlaneRef cannot be removed once set" in err
    # Other fields stay editable.
    cluster.kubectl(
        "patch",
        "environment",
        "dev",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"isProduction": True}}),
    )


def test_client_ca_rules_and_printer_columns(cluster: TestCluster, namespace: str) -> None:
    both = plane("DataPlane", "both", namespace, gateway={"publicVirtualHost": "a.example.com"})
    both["spec"]["clusterAgent"]["clientCA"]["secretKeyRef"] = {"name": "s", "key": "ca.crt"}  # type: ignore[index]
    err = rejected(cluster, "create", "-f", "-", input=json.dumps(both))
    assert "set exactly one of clientCA.value or clientCA.secretKeyRef" in err
    bad = plane("BuildPlane", "bad", namespace)
    bad["spec"]["clusterAgent"]["clientCA"]["value"] = "not pem"  # type: ignore[index]
    assert "must be a PEM certificate" in rejected(
        cluster, "create", "-f", "-", input=json.dumps(bad)
    )
    obs = plane("ObservabilityPlane", "obs", namespace, observerURL="ftp://observer")
    assert "observerURL must be an http" in rejected(
        cluster, "create", "-f", "-", input=json.dumps(obs)
    )

    create(
        cluster,
        plane("DataPlane", "us", namespace, gateway={"publicVirtualHost": "us.apps.example.com"}),
    )
    status = {"status": {"agentConnection": {"connected": True, "connectedAgents": 2}}}
    cluster.kubectl(
        "patch",
        "dataplane",
        "us",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    table = cluster.kubectl("get", "dataplanes", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "PLANEID", "CONNECTED", "AGENTS", "AGE"]
    assert table[1].split()[:4] == ["us", "us", "true", "2"]


def test_rendered_single_cluster_passes_server_side_validation(
    cluster: TestCluster, tmp_path: Path
) -> None:
    """Every object of a render, validated by the API server (dry run, strict fields)."""
    apply_crds(cluster)
    suffix = uuid.uuid4().hex[:6]
    has_cert_manager = (
        cluster.kubectl("get", "crd", "certificates.cert-manager.io", check=False).returncode == 0
    )
    sets = [
        f"spec.organization.name=org-{suffix}",
        f"spec.planes.control.namespace=cp-{suffix}",
        f"spec.planes.data[0].namespace=dp-{suffix}",
        f"spec.planes.build.namespace=bp-{suffix}",
        f"spec.planes.observability.namespace=op-{suffix}",
    ]
    if not has_cert_manager:  # render no cert-manager kinds the server would not know
        sets += ["spec.trust.issuer=choreoctl"]
        for p in ("control", "data[0]", "observability"):
            sets += [f"spec.planes.{p}.tls.issuer=choreoctl"]
    topology = load_topology("single-cluster", sets=tuple(sets))
    rendered = render_topology(topology)
    write_rendered(rendered, tmp_path / "out")
    namespaces = [m.name for m in rendered.manifests() if m.kind == "Namespace"]
    for ns in namespaces:  # dry-run does not create them, and namespaced objects need them
        cluster.kubectl("create", "namespace", ns)
    try:
        for cl, directory in sorted(rendered.directories):
            path = tmp_path / "out" / cl / directory
            done = cluster.kubectl(
                "apply",
                "--dry-run=server",
                "--validate=strict",
                "--server-side",
                "-k",
                str(path),
                check=False,
            )
            assert done.returncode == 0, f"{cl}/{directory}: {done.stderr}"
    finally:
        for ns in namespaces:
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
