"""Doctor against a real cluster with the single-cluster topology laid out, then broken.

The set-up uses choreoctl's own pieces: the renderer's manifests applied as they are, the
trust step (``ensure_trust``: gateway CA, agent certificates, CA distribution) and the
plane CRs registration writes. What the controller manager would write into the CRs'
status (conditions, agentConnection) is written by the test, since no controller runs
here; kwok makes the Deployments Available and the test environment binds PVCs and gives
LoadBalancer Services addresses.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from choreoctl import pki
from choreoctl.checks.doctor import run_doctor
from choreoctl.checks.framework import Report, Result, Status
from choreoctl.cli.preflight import with_context
from choreoctl.kube.client import KubeClient
from choreoctl.planes.crs import API_VERSION, KINDS, plane_cr
from choreoctl.render.renderer import render_topology
from choreoctl.topology.loader import load_topology
from choreoctl.topology.model import TLS, PlaneKind, TLSIssuer, Topology
from choreoctl.trust.gateway_ca import ensure_trust
from tests.testenv import ClusterSpec, TestCluster

pytestmark = pytest.mark.cluster

CHOREOCTL = str(Path(sys.executable).parent / "choreoctl")
NOW = lambda: dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731


def topology(context: str) -> Topology:
    topo = load_topology("single-cluster", sets=["spec.trust.issuer=choreoctl"])
    own = TLS(issuer=TLSIssuer.choreoctl)
    topo = dataclasses.replace(
        topo, planes=tuple(dataclasses.replace(p, tls=own) for p in topo.planes)
    )
    return with_context(topo, context)


async def _wait(pred, what: str, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if await pred():
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _cond(type_: str, generation: int) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True",
        "observedGeneration": generation,
        "lastTransitionTime": NOW(),
        "reason": "Reconciled",
        "message": "ok",
    }


async def mark_reconciled(kc: KubeClient, topo: Topology, *, connected: bool = True) -> None:
    """Write the status the controller manager would: Ready conditions, agent connection."""
    ns = topo.organization
    for plane in topo.planes:
        if plane.kind is PlaneKind.control:
            continue
        cr = await kc.get(API_VERSION, KINDS[plane.kind], plane.name, ns)
        assert cr is not None
        gen = int(cr["metadata"].get("generation", 1))
        status = {
            "conditions": [_cond("Ready", gen)],
            "agentConnection": {
                "connected": connected,
                "connectedAgents": 1 if connected else 0,
                "lastConnectedTime": NOW(),
                "lastHeartbeatTime": NOW(),
            },
        }
        await kc.patch_status(API_VERSION, KINDS[plane.kind], plane.name, ns, {"status": status})
    for env in await kc.list(API_VERSION, "Environment", ns):
        gen = int(env["metadata"].get("generation", 1))
        await kc.patch_status(
            API_VERSION,
            "Environment",
            env["metadata"]["name"],
            ns,
            {"status": {"conditions": [_cond("Ready", gen)]}},
        )


async def install(kc: KubeClient, topo: Topology) -> None:
    rendered = render_topology(topo)
    dirs = rendered.by_cluster()[topo.clusters[0].name]
    for m in dirs["crds"]:
        await kc.apply(m.obj, force=True)

    async def established() -> bool:
        for m in dirs["crds"]:
            crd = await kc.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", m.name)
            conds = (crd or {}).get("status", {}).get("conditions", [])
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                return False
        return True

    await _wait(established, "CRDs Established")
    for name, manifests in dirs.items():
        if name == "crds":
            continue
        for m in manifests:
            await kc.apply(m.obj, force=True)
    await ensure_trust(topo, {topo.clusters[0].name: kc}, timeout=30)
    for plane in topo.planes:
        if plane.kind is PlaneKind.control:
            continue
        secret = await kc.get("v1", "Secret", "cluster-agent-tls", plane.namespace)
        assert secret is not None
        ca = base64.b64decode(secret["data"]["ca.crt"]).decode()
        await kc.apply(plane_cr(topo, plane, ca), force=True)
    await mark_reconciled(kc, topo)

    async def available() -> bool:
        for plane in topo.planes:
            for dep in await kc.list("apps/v1", "Deployment", plane.namespace):
                conds = dep.get("status", {}).get("conditions", [])
                if not any(c["type"] == "Available" and c["status"] == "True" for c in conds):
                    return False
        return True

    await _wait(available, "Deployments Available", 120)


@pytest.fixture(scope="module")
def doc(make_clusters) -> TestCluster:
    tc = make_clusters(ClusterSpec("doc"))["doc"]

    async def setup() -> None:
        async with KubeClient.from_kubeconfig(str(tc.kubeconfig), tc.context) as kc:
            await install(kc, topology(tc.context))

    asyncio.run(setup())
    return tc


@pytest.fixture
async def kc(doc: TestCluster) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(str(doc.kubeconfig), doc.context) as client:
        yield client


async def doctor(tc: TestCluster, **kw: Any) -> dict[str, Result]:
    report = await run_doctor(topology(tc.context), str(tc.kubeconfig), **kw)
    return {r.check: r for r in report.results}


async def test_healthy_install_passes(doc: TestCluster) -> None:
    got = await doctor(doc)
    for check in (
        "api-reachable",
        "agent-pods",
        "agent-connected",
        "plane-status",
        "environments",
        "gateway-ca-match",
        "cert-expiry",
        "agent-client-cert",
        "gateway-sans",
        "deployments-available",
        "pvcs-bound",
        "lb-addresses",
    ):
        assert got[check].status is Status.ok, (check, got[check].reason, got[check].details)
    # kwok nodes serve no logs: said, not failed.
    logs = got["agent-logs"]
    assert logs.status is Status.ok
    assert any("logs unavailable" in d for d in logs.details)
    assert got["plane-refs"].status in (Status.ok, Status.skip)


async def test_gateway_ca_mismatch(doc: TestCluster, kc: KubeClient) -> None:
    ns = topology(doc.context).planes_of(PlaneKind.data)[0].namespace
    before = await kc.get("v1", "ConfigMap", "cluster-gateway-ca", ns)
    assert before is not None
    other = pki.make_ca("not the gateway")
    try:
        await kc.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cluster-gateway-ca", "namespace": ns},
                "data": {"ca.crt": other.cert_pem.decode()},
            },
            field_manager="test",
            force=True,
        )
        got = await doctor(doc)
        assert got["gateway-ca-match"].status is Status.fail
        assert "holds CA" in got["gateway-ca-match"].reason
    finally:
        await kc.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cluster-gateway-ca", "namespace": ns},
                "data": before["data"],
            },
            field_manager="test",
            force=True,
        )


async def test_agent_disconnected_and_stale_status(doc: TestCluster, kc: KubeClient) -> None:
    topo = topology(doc.context)
    try:
        await mark_reconciled(kc, topo, connected=False)
        got = await doctor(doc)
        assert got["agent-connected"].status is Status.fail
        assert "no connected agent" in got["agent-connected"].reason
        # A spec change the controller has not seen: generation moves past the conditions.
        data = topo.planes_of(PlaneKind.data)[0]
        await kc.patch(
            API_VERSION,
            "DataPlane",
            data.name,
            topo.organization,
            {"spec": {"gateway": {"publicVirtualHost": "changed.example.com"}}},
        )
        got = await doctor(doc)
        assert got["plane-status"].status is Status.fail
        assert "check controller-manager" in got["plane-status"].reason
    finally:
        data = topo.planes_of(PlaneKind.data)[0]
        secret = await kc.get("v1", "Secret", "cluster-agent-tls", data.namespace)
        ca = base64.b64decode(secret["data"]["ca.crt"]).decode()  # type: ignore[index]
        await kc.apply(plane_cr(topo, data, ca), force=True)
        await mark_reconciled(kc, topo)


async def test_environment_with_missing_data_plane(doc: TestCluster, kc: KubeClient) -> None:
    topo = topology(doc.context)
    env = {
        "apiVersion": API_VERSION,
        "kind": "Environment",
        "metadata": {"name": "ghost", "namespace": topo.organization},
        "spec": {"dataPlaneRef": "nowhere", "gateway": {"dnsPrefix": "ghost"}},
    }
    await kc.apply(env, force=True)
    try:
        got = await doctor(doc)
        env_result = got["environments"]
        assert env_result.status is Status.fail
        text = " ".join([env_result.reason, *env_result.details])
        assert "dataPlaneRef 'nowhere'" in text
        assert "ghost: no Ready condition" in text
    finally:
        await kc.delete(API_VERSION, "Environment", "ghost", topo.organization)


async def _swap_agent_cert(kc: KubeClient, ns: str, pair: pki.CertKey) -> dict[str, str]:
    old = await kc.get("v1", "Secret", "cluster-agent-tls", ns)
    assert old is not None
    data = dict(old["data"])
    data["tls.crt"] = base64.b64encode(pair.cert_pem).decode()
    data["tls.key"] = base64.b64encode(pair.key_pem).decode()
    await kc.patch("v1", "Secret", "cluster-agent-tls", ns, {"data": data})
    return dict(old["data"])


async def test_agent_cert_from_another_ca_and_expired(doc: TestCluster, kc: KubeClient) -> None:
    ns = topology(doc.context).planes_of(PlaneKind.build)[0].namespace
    stranger = pki.make_ca("stranger")
    foreign = pki.issue_cert(stranger, "default", client=True)
    original = await _swap_agent_cert(kc, ns, foreign)
    try:
        got = await doctor(doc)
        assert got["agent-client-cert"].status is Status.fail
        assert "not signed by any CA of the clientCA bundle" in got["agent-client-cert"].reason
        now = dt.datetime.now(dt.UTC)
        old = pki.issue_cert(
            stranger,
            "default",
            client=True,
            not_before=now - dt.timedelta(days=30),
            not_after=now - dt.timedelta(days=1),
        )
        await _swap_agent_cert(kc, ns, old)
        got = await doctor(doc)
        assert got["cert-expiry"].status is Status.fail
        assert f"{ns}/cluster-agent-tls expired on" in got["cert-expiry"].reason
    finally:
        await kc.patch("v1", "Secret", "cluster-agent-tls", ns, {"data": original})


async def test_workload_failures(doc: TestCluster, kc: KubeClient) -> None:
    topo = topology(doc.context)
    ns = topo.control.namespace
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "stuck", "namespace": ns},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "no-such-class",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    dep = await kc.get("apps/v1", "Deployment", "backstage", ns)
    assert dep is not None
    await kc.create(pvc)
    try:
        await kc.delete("apps/v1", "Deployment", "backstage", ns)
        got = await doctor(doc)
        assert got["pvcs-bound"].status is Status.fail
        assert f"{ns}/stuck: Pending" in got["pvcs-bound"].details
        assert got["deployments-available"].status is Status.fail
        assert f"{ns}/backstage does not exist" in got["deployments-available"].reason
    finally:
        await kc.delete("v1", "PersistentVolumeClaim", "stuck", ns)
        from choreoctl.install.objects import strip_server_fields

        await kc.apply(strip_server_fields(dep), force=True)


async def test_wait_retries_until_fixed(doc: TestCluster, kc: KubeClient) -> None:
    topo = topology(doc.context)
    await mark_reconciled(kc, topo, connected=False)

    async def reconnect() -> None:
        await asyncio.sleep(1.5)
        await mark_reconciled(kc, topo)

    fixing = asyncio.ensure_future(reconnect())
    report: Report = await run_doctor(topo, str(doc.kubeconfig), wait=30)
    await fixing
    got = {r.check: r for r in report.results}
    assert got["agent-connected"].status is Status.ok
    assert report.attempts > 1


def test_cli_and_bundle_redacts_secrets(doc: TestCluster, tmp_path: Path) -> None:
    ns = topology(doc.context).planes_of(PlaneKind.data)[0].namespace
    value = f"topsecret-{uuid.uuid4().hex}"
    token = (
        "eyJhbGciOiJSUzI1NiJ9."
        + base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
        + ".c2ln"
    )
    doc.kubectl(
        "-n", ns, "create", "secret", "generic", "doctor-test", f"--from-literal=password={value}"
    )
    doc.kubectl(
        "-n",
        ns,
        "create",
        "configmap",
        "doctor-test",
        f"--from-literal=api-token={value}",
        f"--from-literal=note=auth {token}",
    )
    bundle = tmp_path / "support.tar.gz"
    env = {**os.environ, "KUBECONFIG": str(doc.kubeconfig)}
    try:
        run = subprocess.run(
            [
                CHOREOCTL,
                "doctor",
                "--context",
                doc.context,
                "--set",
                "spec.trust.issuer=choreoctl",
                "-o",
                "json",
                "--bundle",
                str(bundle),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        doc.kubectl("-n", ns, "delete", "secret,configmap", "doctor-test")
    doc_json = json.loads(run.stdout)
    assert doc_json["command"] == "doctor" and doc_json["schemaVersion"] == 1
    assert run.returncode in (0, 1)
    assert "support bundle written" in run.stderr
    with tarfile.open(bundle, "r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    names = set(files)
    assert "choreoctl-bundle/report.json" in names
    assert b"kind: Topology" in files["choreoctl-bundle/topology.yaml"]
    assert f"choreoctl-bundle/clusters/local/{ns}/secrets.yaml" in names
    assert f"choreoctl-bundle/clusters/local/{ns}/events.yaml" in names
    assert any("dataplanes.yaml" in n for n in names)
    blob = b"\n".join(files.values())
    for secret in (value, base64.b64encode(value.encode()).decode(), token):
        assert secret.encode() not in blob
    # Nothing that looks like a private key or a Secret's base64 value survives.
    assert b"PRIVATE KEY-----\n" not in blob
    secrets_yaml = files[f"choreoctl-bundle/clusters/local/{ns}/secrets.yaml"].decode()
    assert "doctor-test" in secrets_yaml and "cluster-agent-tls" in secrets_yaml
    notes = files["choreoctl-bundle/notes.txt"].decode()
    assert "logs of" in notes  # kwok pods have no logs: recorded, not fatal


async def test_plane_clusters_read_the_control_plane_through_peers(doc: TestCluster) -> None:
    # multi-cluster places the same planes (same names and namespaces) in four clusters;
    # pointing all four at this cluster makes the data/build/observability clusters read
    # the gateway CA and their plane CRs through the control cluster's client.
    base = load_topology("multi-cluster", sets=["spec.trust.issuer=choreoctl"])
    topo = with_context(base, doc.context)
    report = await run_doctor(topo, str(doc.kubeconfig))
    got = {(r.cluster, r.check): r for r in report.results}
    data_cluster = topo.planes_of(PlaneKind.data)[0].cluster
    assert data_cluster != topo.control.cluster
    for check in ("gateway-ca-match", "agent-connected", "agent-client-cert", "agent-pods"):
        result = got[(data_cluster, check)]
        assert result.status is Status.ok, (check, result.reason)
    assert got[(data_cluster, "plane-status")].status is Status.skip
    assert got[(topo.control.cluster, "agent-pods")].status is Status.skip
