"""The trust step against real API servers: choreoctl as issuer, distribution, status, CLI.

Two clusters: ``alpha`` holds the control plane, ``beta`` a data plane; every test uses
fresh namespaces so tests do not see each other's Secrets.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from choreoctl import pki
from choreoctl.kube.client import KubeClient
from choreoctl.topology.model import (
    Cluster,
    Environment,
    Gateway,
    Plane,
    PlaneKind,
    TLSIssuer,
    Topology,
    TopologyType,
)
from choreoctl.trust.gateway_ca import ensure_trust
from choreoctl.trust.status import trust_status

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CHOREOCTL = str(REPO / ".venv" / "bin" / "choreoctl")


def lab_topology(control: str, plane: str, uid: str, **kw: Any) -> Topology:
    """A control plane in ``control`` and observability + data planes in ``plane``."""
    return Topology(
        name=f"lab-{uid}",
        type=TopologyType.multi_cluster,
        clusters=(Cluster(control, control), Cluster(plane, plane)),
        planes=(
            Plane(PlaneKind.control, "control-plane", control, f"cp-{uid}"),
            Plane(
                PlaneKind.observability,
                "default",
                plane,
                f"obs-{uid}",
                domains={"ingestion": "logs.example.com"},
            ),
            Plane(
                PlaneKind.data,
                "us",
                plane,
                f"dp-{uid}",
                public_virtual_host=f"us-{uid}.apps.example.com",
                observability_plane="default",
            ),
        ),
        organization=f"org-{uid}",
        environments=(Environment("dev", "us", "dev"),),
        gateway=Gateway(external_host="gateway.example.com"),
        trust_issuer=TLSIssuer.choreoctl,
        **kw,
    )


def topology_file(topo: Topology, path: Path) -> Path:
    """The same lab as a topology file, for CLI tests."""
    obs = topo.plane("default", PlaneKind.observability)
    dp = topo.plane("us", PlaneKind.data)
    doc = {
        "apiVersion": "choreoctl.dev/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": topo.name},
        "spec": {
            "type": "multi-cluster",
            "clusters": [{"name": c.name, "context": c.context} for c in topo.clusters],
            "organization": {
                "name": topo.organization,
                "environments": [{"name": "dev", "dataPlane": "us", "dnsPrefix": "dev"}],
            },
            "gateway": {"externalHost": topo.gateway.external_host},
            "trust": {"issuer": "choreoctl"},
            "planes": {
                "control": {
                    "name": "control-plane",
                    "cluster": topo.control.cluster,
                    "namespace": topo.control.namespace,
                    "domains": {
                        "console": "console.example.com",
                        "api": "api.example.com",
                        "identity": "identity.example.com",
                    },
                },
                "observability": {
                    "name": "default",
                    "cluster": obs.cluster,
                    "namespace": obs.namespace,
                    "domains": dict(obs.domains),
                },
                "data": [
                    {
                        "name": "us",
                        "cluster": dp.cluster,
                        "namespace": dp.namespace,
                        "domains": {"apps": f"*.{dp.public_virtual_host}"},
                        "publicVirtualHost": dp.public_virtual_host,
                        "observabilityPlane": "default",
                    }
                ],
            },
        },
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def apply_crds(cluster: Any) -> None:
    """The openchoreo.dev CRDs in ``cluster`` (idempotent), Established."""
    cluster.kubectl("apply", "--server-side", "-f", str(REPO / "templates" / "crds"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=openchoreo",
    )


@pytest.fixture
async def lab(clusters: Any) -> AsyncIterator[tuple[Topology, dict[str, KubeClient]]]:
    alpha, beta = clusters["alpha"], clusters["beta"]
    apply_crds(alpha)
    uid = uuid.uuid4().hex[:6]
    topo = lab_topology("alpha", "beta", uid)
    clients = {
        "alpha": KubeClient.from_kubeconfig(str(alpha.kubeconfig), alpha.context),
        "beta": KubeClient.from_kubeconfig(str(beta.kubeconfig), beta.context),
    }
    yield topo, clients
    for p in topo.planes:
        await clients[p.cluster].delete("v1", "Namespace", p.namespace)
    await clients["alpha"].delete("v1", "Namespace", topo.organization)
    await clients["alpha"].delete("openchoreo.dev/v1alpha1", "Organization", topo.organization)
    for c in clients.values():
        await c.aclose()


async def _secret(client: KubeClient, ns: str, name: str) -> dict[str, bytes]:
    obj = await client.get("v1", "Secret", name, ns)
    assert obj is not None, f"Secret {ns}/{name} missing"
    return {k: base64.b64decode(v) for k, v in obj["data"].items()}


async def test_choreoctl_issuer_creates_every_secret_and_distributes_public_ca(lab) -> None:
    topo, clients = lab
    alpha, beta = clients["alpha"], clients["beta"]
    ca_pem = await ensure_trust(topo, clients, timeout=30)
    assert b"PRIVATE KEY" not in ca_pem
    cp = topo.control.namespace
    ca = await _secret(alpha, cp, "cluster-gateway-ca")
    assert pki.fingerprint(pki.load_certs(ca["tls.crt"])[0]) == pki.fingerprint(
        pki.load_certs(ca_pem)[0]
    )
    ca_cert = pki.load_certs(ca_pem)[0]
    tls = await _secret(alpha, cp, "cluster-gateway-tls")
    serving = pki.load_certs(tls["tls.crt"])[0]
    assert pki.issued_by(serving, ca_cert)
    for name in (
        f"cluster-gateway.{cp}.svc.cluster.local",
        "gateway.example.com",
        "localhost",
        "127.0.0.1",
    ):
        assert pki.hostname_matches(serving, name), name
    ctl = await _secret(alpha, cp, "controller-manager-tls")
    pki.verify_client_cert(pki.load_certs(ctl["tls.crt"])[0], [ca_cert])
    for plane in topo.planes[1:]:
        cm = await beta.get("v1", "ConfigMap", "cluster-gateway-ca", plane.namespace)
        assert cm is not None and cm["data"]["ca.crt"].encode() == ca_pem
        agent = await _secret(beta, plane.namespace, "cluster-agent-tls")
        leaf = pki.load_certs(agent["tls.crt"])[0]
        pki.verify_client_cert(leaf, pki.load_certs(agent["ca.crt"]))
        assert leaf.subject.rfc4514_string() == f"CN={plane.effective_plane_id}"
    # The gateway CA's key never leaves the control plane cluster.
    for plane in topo.planes[1:]:
        for ns_obj in await beta.list("v1", "Secret", plane.namespace):
            for value in (ns_obj.get("data") or {}).values():
                assert base64.b64decode(value) != ca["tls.key"]
        for cm in await beta.list("v1", "ConfigMap", plane.namespace):
            assert all("PRIVATE KEY" not in v for v in (cm.get("data") or {}).values())


async def test_ensure_trust_twice_changes_nothing(lab) -> None:
    topo, clients = lab
    first = await ensure_trust(topo, clients, timeout=30)
    cp = topo.control.namespace
    names = ("cluster-gateway-ca", "cluster-gateway-tls", "controller-manager-tls")
    before = {n: await clients["alpha"].get("v1", "Secret", n, cp) for n in names}
    second = await ensure_trust(topo, clients, timeout=30)
    assert first == second
    for n in names:
        after = await clients["alpha"].get("v1", "Secret", n, cp)
        assert after is not None and before[n] is not None
        assert after["metadata"]["resourceVersion"] == before[n]["metadata"]["resourceVersion"]


async def test_ensure_trust_reissues_serving_cert_missing_a_new_san(lab) -> None:
    topo, clients = lab
    await ensure_trust(topo, clients, timeout=30)
    import dataclasses

    wider = dataclasses.replace(
        topo, gateway=Gateway(external_host="gateway.example.com", extra_sans=("10.1.2.3",))
    )
    await ensure_trust(wider, clients, timeout=30)
    tls = await _secret(clients["alpha"], topo.control.namespace, "cluster-gateway-tls")
    assert pki.hostname_matches(pki.load_certs(tls["tls.crt"])[0], "10.1.2.3")


async def test_trust_status_reports_match_then_mismatch(lab) -> None:
    topo, clients = lab
    await ensure_trust(topo, clients, timeout=30)
    report = await trust_status(topo, clients)
    assert report["gateway"]["problems"] == []
    assert all(p["gatewayCAMatches"] for p in report["planes"])
    # every plane is still unregistered: that is the one problem left
    assert all(
        p["problems"] == [f"{p['kind']} {p['plane']!r} is not registered"] for p in report["planes"]
    )
    rogue = pki.make_ca("rogue").cert_pem.decode()
    dp = topo.plane("us", PlaneKind.data)
    await clients["beta"].apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cluster-gateway-ca", "namespace": dp.namespace},
            "data": {"ca.crt": rogue},
        },
        force=True,
    )
    report = await trust_status(topo, clients)
    row = next(p for p in report["planes"] if p["plane"] == "us")
    assert not row["gatewayCAMatches"] and not report["ok"]
    assert any("different gateway CA" in p for p in row["problems"])


def _cli(*args: str, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHOREOCTL, *args, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_cli_extract_distribute_status(lab, tmp_path: Path, clusters: Any) -> None:
    topo, clients = lab
    ca_pem = await ensure_trust(topo, clients, timeout=30)
    path = topology_file(topo, tmp_path / "lab.yaml")
    kubeconfig = clusters["alpha"].kubeconfig
    out = _cli("trust", "extract", "-t", str(path), kubeconfig=kubeconfig)
    assert out.returncode == 0, out.stderr
    assert out.stdout.encode() == ca_pem
    dp = topo.plane("us", PlaneKind.data)
    await clients["beta"].delete("v1", "ConfigMap", "cluster-gateway-ca", dp.namespace)
    out = _cli("trust", "distribute", "-t", str(path), "-o", "json", kubeconfig=kubeconfig)
    assert out.returncode == 0, out.stderr
    assert {r["plane"] for r in yaml.safe_load(out.stdout)} == {"default", "us"}
    out = _cli("trust", "status", "-t", str(path), "-o", "json", kubeconfig=kubeconfig)
    assert out.returncode == 1  # planes are not registered yet: a failed check
    report = yaml.safe_load(out.stdout)
    assert all(p["gatewayCAMatches"] for p in report["planes"])


def test_cli_extract_without_control_plane_is_a_trust_error(tmp_path: Path, clusters: Any) -> None:
    topo = lab_topology("alpha", "beta", uuid.uuid4().hex[:6])
    path = topology_file(topo, tmp_path / "lab.yaml")
    out = _cli("trust", "extract", "-t", str(path), kubeconfig=clusters["alpha"].kubeconfig)
    assert out.returncode == 4, out.stderr
    assert "error[trust]" in out.stderr and "cluster-gateway-ca" in out.stderr
    assert "Traceback" not in out.stderr
