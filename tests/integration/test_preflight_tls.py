"""Preflight certificate and in-cluster connectivity checks against real clusters.

cert-manager in the test clusters runs as a real controller process (not a Deployment),
so the healthy case is seen through its leader Lease; version detection is exercised with
a Deployment carrying the labels and image a manifest/Helm install of cert-manager has.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from choreoctl import pki
from choreoctl.checks.framework import CheckContext, Status
from choreoctl.checks.preflight.certs import check_byo_tls, check_cert_manager
from choreoctl.checks.preflight.connectivity import check_gateway_in_cluster
from choreoctl.checks.preflight.scratch import SCRATCH_LABEL
from choreoctl.cli.preflight import with_context
from choreoctl.kube.client import KubeClient
from choreoctl.topology.loader import load_topology
from choreoctl.topology.model import TLS, PlaneKind, TLSIssuer, Topology
from tests.testenv import TestCluster
from tests.testenv.kubeapi import FIELD_MANAGER
from tests.testenv.resources import cert_manager_deployment

pytestmark = pytest.mark.cluster


@pytest.fixture
async def kc(cluster: TestCluster) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(str(cluster.kubeconfig), cluster.context) as client:
        yield client


def ctx_for(
    topo: Topology, kc: KubeClient, *, probe: bool = False, timeout: float = 10
) -> CheckContext:
    return CheckContext(topo, topo.clusters[0], kc, probe=probe, timeout=timeout)


async def _wait_version(kc: KubeClient, ns: str, version: str) -> None:
    for _ in range(100):
        dep = await kc.get("apps/v1", "Deployment", "cert-manager", ns)
        labels = (dep or {}).get("metadata", {}).get("labels", {})
        available = (dep or {}).get("status", {}).get("availableReplicas")
        if available and labels.get("app.kubernetes.io/version") == version:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"Deployment {ns}/cert-manager never became available at {version}")


async def test_cert_manager_detection(cluster: TestCluster, kc: KubeClient) -> None:
    if cluster.spec.cert_manager is False:
        pytest.skip("cert-manager is not built for the test clusters (see tests/testenv)")
    topo = with_context(load_topology("single-cluster"), cluster.context)
    ctx = ctx_for(topo, kc)
    # The test cluster shows cert-manager as a normal install does (a labelled Deployment
    # in namespace cert-manager) while the real controller runs as a local process.
    seen = await check_cert_manager(ctx)
    assert seen.status is Status.ok, seen
    assert "v1.21.2" in seen.reason
    probed = await check_cert_manager(ctx_for(topo, kc, probe=True))
    assert probed.status is Status.ok, probed
    # The version rule and the "no controller" path, on the same Deployment, restored after.
    try:
        for version, status in (("v1.11.4", Status.fail), ("v1.21.2", Status.ok)):
            await kc.apply(cert_manager_deployment(version), force=True)
            await _wait_version(kc, "cert-manager", version)
            out = await check_cert_manager(ctx_for(topo, kc))
            assert out.status is status, out
            assert version in out.reason
        await _delete_cert_manager(kc)
        gone = await check_cert_manager(ctx)
        assert gone.status is Status.fail, gone
        assert "no controller was found" in gone.reason
        outside = await check_cert_manager(ctx_for(topo, kc, probe=True))
        assert outside.status is Status.warn, outside
        assert "issued a probe Certificate" in outside.reason
    finally:
        # Put back exactly what the test environment creates, owned by its field manager.
        await _delete_cert_manager(kc)
        await kc.apply(cert_manager_deployment("v1.21.2"), field_manager=FIELD_MANAGER, force=True)
        await _wait_version(kc, "cert-manager", "v1.21.2")
    own = TLS(issuer=TLSIssuer.byo, secret_name="x")
    planes = tuple(dataclasses.replace(p, tls=own) for p in topo.planes)
    byo = dataclasses.replace(topo, planes=planes, trust_issuer=TLSIssuer.choreoctl)
    assert (await check_cert_manager(ctx_for(byo, kc))).status is Status.skip


async def _delete_cert_manager(kc: KubeClient) -> None:
    """Delete the cert-manager Deployment and wait (up to 10 s) until it is gone."""
    await kc.delete("apps/v1", "Deployment", "cert-manager", "cert-manager")
    for _ in range(50):
        if await kc.get("apps/v1", "Deployment", "cert-manager", "cert-manager") is None:
            return
        await asyncio.sleep(0.2)


def _write(tmp: Path, name: str, pair: pki.CertKey) -> tuple[str, str]:
    cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    pair.write(cert, key)
    return str(cert), str(key)


async def test_byo_tls_files_and_secret(
    cluster: TestCluster, kc: KubeClient, tmp_path: Path
) -> None:
    base = with_context(load_topology("single-cluster"), cluster.context)
    ca = pki.make_ca("byo test root")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    control = base.control
    names = [control.domains[k] for k in ("console", "api", "identity")]
    data = base.planes_of(PlaneKind.data)[0]
    ns = f"byo-{uuid.uuid4().hex[:6]}"
    wildcard = data.domains["apps"]

    def topo(control_pair: pki.CertKey, label: str) -> Topology:
        cert, key = _write(tmp_path, label, control_pair)
        ctl = dataclasses.replace(
            control,
            tls=TLS(
                issuer=TLSIssuer.byo, cert_file=cert, key_file=key, ca_file=str(tmp_path / "ca.crt")
            ),
        )
        dp = dataclasses.replace(
            data, namespace=ns, tls=TLS(issuer=TLSIssuer.byo, secret_name="apps-tls")
        )
        planes = tuple(ctl if p is control else dp if p is data else p for p in base.planes)
        return dataclasses.replace(base, planes=planes)

    apps = pki.issue_cert(ca, "apps", dns_names=[wildcard], server=True)
    await kc.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        await kc.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {"name": "apps-tls", "namespace": ns},
                "data": {
                    "tls.crt": base64.b64encode(apps.cert_pem).decode(),
                    "tls.key": base64.b64encode(apps.key_pem).decode(),
                    "ca.crt": base64.b64encode(ca.cert_pem).decode(),
                },
            }
        )
        good = pki.issue_cert(ca, names[0], dns_names=names, server=True)
        out = await check_byo_tls(ctx_for(topo(good, "good"), kc))
        assert out.status is Status.ok, out

        wrong = pki.issue_cert(ca, names[0], dns_names=[names[0], "other.example.com"], server=True)
        out = await check_byo_tls(ctx_for(topo(wrong, "wrong"), kc))
        assert out.status is Status.fail
        assert names[1] in out.reason and names[2] in out.reason

        now = dt.datetime.now(dt.UTC)
        expired = pki.issue_cert(
            ca,
            names[0],
            dns_names=names,
            server=True,
            not_before=now - dt.timedelta(days=90),
            not_after=now - dt.timedelta(days=2),
        )
        out = await check_byo_tls(ctx_for(topo(expired, "expired"), kc))
        assert out.status is Status.fail and "expired on" in out.reason

        soon = pki.issue_cert(ca, names[0], dns_names=names, server=True, days=7)
        out = await check_byo_tls(ctx_for(topo(soon, "soon"), kc))
        assert out.status is Status.warn and "expires in" in out.reason

        await kc.delete("v1", "Secret", "apps-tls", ns)
        out = await check_byo_tls(ctx_for(topo(good, "good2"), kc))
        assert out.status is Status.fail and "apps-tls does not exist" in out.reason
    finally:
        await kc.delete("v1", "Namespace", ns)


async def test_probe_pod_on_simulated_nodes_warns_and_cleans_up(
    cluster: TestCluster, kc: KubeClient
) -> None:
    base = load_topology("multi-cluster")
    topo = dataclasses.replace(
        base,
        clusters=tuple(dataclasses.replace(c, context=cluster.context) for c in base.clusters),
    )
    data_cluster = topo.plane("default", PlaneKind.data).cluster
    ctx = CheckContext(topo, topo.cluster(data_cluster), kc, probe=True, timeout=8)
    out = await check_gateway_in_cluster(ctx)
    assert out.status is Status.warn, out
    assert "kwok runs no containers" in out.reason
    left = await kc.list("v1", "Namespace", label_selector=f"{SCRATCH_LABEL}=true")
    assert [n for n in left if not n["metadata"].get("deletionTimestamp")] == []
    ctl = CheckContext(topo, topo.cluster(topo.control.cluster), kc, probe=True)
    assert (await check_gateway_in_cluster(ctl)).status is Status.skip
    no_probe = CheckContext(topo, topo.cluster(data_cluster), kc)
    assert (await check_gateway_in_cluster(no_probe)).status is Status.skip
