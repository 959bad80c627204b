"""Preflight against real clusters: healthy, and deliberately broken.

One "broken" cluster (a single node of 2 CPU / 4Gi, no default StorageClass, no
LoadBalancer, no cert-manager) serves every broken-state test; the session's healthy
"alpha" serves the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from choreoctl.checks.framework import CheckContext, Report, Result, Status
from choreoctl.checks.preflight import run_preflight
from choreoctl.checks.preflight.scratch import SCRATCH_LABEL
from choreoctl.cli.preflight import with_context
from choreoctl.kube.client import KubeClient
from choreoctl.topology.loader import load_topology
from choreoctl.topology.model import Topology
from tests.testenv import ClusterSet, ClusterSpec, TestCluster

pytestmark = pytest.mark.cluster

BROKEN = ClusterSpec(
    "broken", nodes=1, cpu="2", memory="4Gi", storage_class=False, load_balancer=False
)
CHOREOCTL = str(Path(sys.executable).parent / "choreoctl")


@pytest.fixture(scope="module")
def broken_set(make_clusters) -> ClusterSet:
    return make_clusters(BROKEN)


@pytest.fixture(scope="module")
def broken(broken_set: ClusterSet) -> TestCluster:
    return broken_set["broken"]


def single(context: str, *sets: str) -> Topology:
    return with_context(load_topology("single-cluster", sets=sets), context)


def by_id(report: Report, cluster: str = "local") -> dict[str, Result]:
    return {r.check: r for r in report.results if r.cluster == cluster}


async def test_healthy_cluster_passes(cluster: TestCluster) -> None:
    report = await run_preflight(single(cluster.context), str(cluster.kubeconfig))
    got = by_id(report)
    for check in (
        "api-reachable",
        "k8s-version",
        "rbac-enabled",
        "node-count",
        "node-capacity",
        "allocatable",
        "permissions",
        "default-storageclass",
        "storage-capacity",
    ):
        assert got[check].status is Status.ok, (check, got[check].reason, got[check].details)
    assert got["k8s-version"].reason.startswith("v1.")
    assert "needs 975m CPU" in got["allocatable"].reason
    assert got["shared-ip-ports"].status is Status.skip
    assert got["byo-tls"].status is Status.skip
    local = by_id(report, "")
    assert local["kubectl"].status is Status.ok


async def test_broken_cluster_fails_nodes_storage(broken: TestCluster) -> None:
    report = await run_preflight(single(broken.context), str(broken.kubeconfig))
    got = by_id(report)
    assert got["api-reachable"].status is Status.ok
    assert got["node-count"].status is Status.fail
    assert "1 ready, schedulable node(s) of 1" in got["node-count"].reason
    assert got["node-capacity"].status is Status.fail
    assert "2 CPU, 4Gi" in got["node-capacity"].details[0]
    assert got["default-storageclass"].status is Status.fail
    assert got["storage-capacity"].status is Status.fail
    assert got["load-balancer"].status is Status.warn  # no sign of an implementation
    assert got["cert-manager"].status is Status.fail
    assert "CRDs missing" in got["cert-manager"].reason
    assert report.exit_code() == 1


async def test_allocatable_counts_running_pods_and_topology_sum(broken: TestCluster) -> None:
    kc = KubeClient.from_kubeconfig(str(broken.kubeconfig), broken.context)
    ns = f"pf-load-{uuid.uuid4().hex[:6]}"
    try:
        before = by_id(await run_preflight(single(broken.context), str(broken.kubeconfig)))
        assert before["allocatable"].status is Status.ok, before["allocatable"].reason
        await kc.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "hog", "namespace": ns},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "resources": {"requests": {"cpu": "1500m", "memory": "64Mi"}},
                    }
                ]
            },
        }
        await kc.create(pod)
        for _ in range(100):
            got = await kc.get("v1", "Pod", "hog", ns)
            if got and got["spec"].get("nodeName"):
                break
            await asyncio.sleep(0.1)
        after = by_id(await run_preflight(single(broken.context), str(broken.kubeconfig)))
        assert after["allocatable"].status is Status.fail
        assert "CPU short by 475m" in after["allocatable"].reason  # 2000m - 1500m vs 975m
    finally:
        await kc.delete("v1", "Namespace", ns)
        await kc.aclose()


async def test_topology_bigger_than_the_cluster(cluster: TestCluster) -> None:
    topo = single(
        cluster.context,
        "spec.planes.control.components.api.replicas=5",
        "spec.planes.control.components.api.resources.requests.cpu=3",
        "spec.planes.control.components.api.resources.limits.cpu=3",
    )
    got = by_id(await run_preflight(topo, str(cluster.kubeconfig)))
    assert got["allocatable"].status is Status.fail
    assert "CPU short by" in got["allocatable"].reason
    assert any(d.startswith("control-plane/api: 5 × 3 CPU") for d in got["allocatable"].details)


async def test_limited_user_lists_missing_permissions(cluster: TestCluster) -> None:
    got = by_id(await run_preflight(single(cluster.limited_context), str(cluster.kubeconfig)))
    perm = got["permissions"]
    assert perm.status is Status.fail
    assert "create deployments.apps -n openchoreo-control-plane" in perm.details
    assert "create customresourcedefinitions.apiextensions.k8s.io (cluster-wide)" in perm.details
    assert "permissions missing" in perm.reason


async def test_unreachable_cluster_fails_fast_and_alone(
    cluster: TestCluster, tmp_path: Path
) -> None:
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "dead", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "dead", "user": {"token": "x"}}],
                "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "dead"}}],
                "current-context": "dead",
            }
        )
    )
    base = load_topology("multi-cluster")
    contexts = {
        c.name: ("dead" if i == 1 else cluster.context) for i, c in enumerate(base.clusters)
    }
    topo = dataclasses.replace(
        base,
        clusters=tuple(dataclasses.replace(c, context=contexts[c.name]) for c in base.clusters),
    )
    dead_name = base.clusters[1].name
    start = time.monotonic()
    report = await run_preflight(topo, f"{cluster.kubeconfig}{os.pathsep}{dead}", timeout=10)
    assert time.monotonic() - start < 10
    dead_results = by_id(report, dead_name)
    assert dead_results["api-reachable"].status is Status.fail
    assert "cannot reach https://127.0.0.1:9" in dead_results["api-reachable"].reason
    blocked = [r for r in dead_results.values() if r.blocked_by == "api-reachable"]
    assert blocked and all(r.status is Status.fail for r in blocked)
    alive = by_id(report, base.clusters[0].name)
    assert alive["api-reachable"].status is Status.ok
    assert alive["k8s-version"].status is Status.ok


async def _scratch(kc: KubeClient) -> list[str]:
    items = await kc.list("v1", "Namespace", label_selector=f"{SCRATCH_LABEL}=true")
    return [n["metadata"]["name"] for n in items if not n["metadata"].get("deletionTimestamp")]


async def test_probe_load_balancer_healthy_and_broken_leaves_nothing(
    cluster: TestCluster, broken: TestCluster
) -> None:
    good = by_id(await run_preflight(single(cluster.context), str(cluster.kubeconfig), probe=True))
    assert good["load-balancer"].status is Status.ok
    assert "probe Service got 127." in good["load-balancer"].reason
    bad = by_id(
        await run_preflight(single(broken.context), str(broken.kubeconfig), probe=True, timeout=8)
    )
    assert bad["load-balancer"].status is Status.fail
    assert "no address within" in bad["load-balancer"].reason
    for tc in (cluster, broken):
        async with KubeClient.from_kubeconfig(str(tc.kubeconfig), tc.context) as kc:
            assert await _scratch(kc) == []


async def test_cancel_during_probe_removes_the_scratch_namespace(broken: TestCluster) -> None:
    task = asyncio.ensure_future(
        run_preflight(single(broken.context), str(broken.kubeconfig), probe=True, timeout=60)
    )
    async with KubeClient.from_kubeconfig(str(broken.kubeconfig), broken.context) as kc:
        try:
            for _ in range(300):
                if await _scratch(kc) or task.done():
                    break
                await asyncio.sleep(0.1)
            assert await _scratch(kc), "the probe never created its namespace"
        finally:
            was_running = task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        assert was_running, "preflight finished before it could be cancelled"
        left = await kc.list("v1", "Namespace", label_selector=f"{SCRATCH_LABEL}=true")
        assert await _scratch(kc) == [], [n["metadata"] for n in left]


def test_ctrl_c_during_probe_leaves_nothing(broken: TestCluster) -> None:
    env = {**os.environ, "KUBECONFIG": str(broken.kubeconfig)}
    proc = subprocess.Popen(
        [CHOREOCTL, "preflight", "--context", broken.context, "--probe", "--timeout", "60s"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def scratch() -> list[str]:
        out = broken.kubectl("get", "ns", "-l", f"{SCRATCH_LABEL}=true", "-o", "json").stdout
        items = json.loads(out)["items"]
        return [n["metadata"]["name"] for n in items if not n["metadata"].get("deletionTimestamp")]

    try:
        assert scratch() == [], "a scratch namespace is left from before"
        deadline = time.monotonic() + 60
        while not scratch() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert scratch(), "the probe never created its namespace"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert scratch() == []


async def test_wait_retries_until_a_default_storageclass_appears(broken: TestCluster) -> None:
    sc = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": "late-default",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "example.com/none",
    }
    async with KubeClient.from_kubeconfig(str(broken.kubeconfig), broken.context) as kc:

        async def add_later() -> None:
            await asyncio.sleep(1.5)
            await kc.create(sc)

        try:
            adding = asyncio.ensure_future(add_later())
            report = await run_preflight(single(broken.context), str(broken.kubeconfig), wait=30)
            await adding
        finally:
            await kc.delete("storage.k8s.io/v1", "StorageClass", "late-default")
    got = by_id(report)
    assert got["default-storageclass"].status is Status.ok
    assert report.attempts > 1
    assert got["node-count"].status is Status.fail  # still failing: waited until the deadline


def test_cli_json_exit_codes_and_plain_text(cluster: TestCluster) -> None:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "TERM": "xterm-256color"}
    run = subprocess.run(
        [CHOREOCTL, "preflight", "--context", cluster.context, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    doc = json.loads(run.stdout)
    assert doc["kind"] == "CheckReport" and doc["schemaVersion"] == 1
    assert run.returncode == (1 if not doc["summary"]["ok"] else 0)
    table = subprocess.run(
        [CHOREOCTL, "preflight", "--context", cluster.context],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "\x1b[" not in table.stdout
    assert "cluster local" in table.stdout and "√ the API server answers" in table.stdout
    strict = subprocess.run(
        [CHOREOCTL, "preflight", "--context", cluster.context, "--strict", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    warned = json.loads(strict.stdout)["summary"]["warn"] > 0
    assert strict.returncode == (1 if warned or not doc["summary"]["ok"] else 0)
    bad = subprocess.run(
        [CHOREOCTL, "preflight", "--wait", "soon"], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "error[bad-input]" in bad.stderr
    bad_topo = subprocess.run(
        [CHOREOCTL, "preflight", "-t", "no-such-topology"], env=env, capture_output=True, text=True
    )
    assert bad_topo.returncode == 2
    for command in ("preflight", "doctor"):
        missing = subprocess.run(
            [CHOREOCTL, command, "--kubeconfig", "/no/such/kubeconfig"],
            capture_output=True,
            text=True,
        )
        assert missing.returncode == 2 and "does not exist" in missing.stderr


async def test_local_dns_and_gateway_reachability(unused_tcp_port: int) -> None:
    from choreoctl.checks.preflight.connectivity import check_gateway_local
    from choreoctl.checks.preflight.local import check_dns

    base = load_topology("multi-cluster")
    control = dataclasses.replace(
        base.control, domains={"console": "localhost", "api": "localhost", "identity": "localhost"}
    )
    planes = tuple(control if p is base.control else p for p in base.planes)
    topo = dataclasses.replace(base, planes=planes)
    ctx = CheckContext(topo, None, None, timeout=5)
    dns = await check_dns(ctx)
    assert dns.status is Status.warn
    assert not any("localhost" in d for d in dns.details)  # localhost resolves

    nowhere = dataclasses.replace(
        topo, gateway=dataclasses.replace(topo.gateway, external_host="gw.example.invalid")
    )
    out = await check_gateway_local(CheckContext(nowhere, None, None, timeout=5))
    assert out.status is Status.warn and "does not resolve" in out.reason

    port = unused_tcp_port
    loop_topo = dataclasses.replace(
        topo, gateway=dataclasses.replace(topo.gateway, external_host="127.0.0.1", port=port)
    )
    refused = await check_gateway_local(CheckContext(loop_topo, None, None, timeout=5))
    assert refused.status is Status.ok and "nothing listens" in refused.reason
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        opened = await check_gateway_local(CheckContext(loop_topo, None, None, timeout=5))
    finally:
        server.close()
        await server.wait_closed()
    assert opened.status is Status.ok and "accepts connections" in opened.reason


async def test_storage_capacity_published_by_the_provisioner(cluster: TestCluster) -> None:
    async with KubeClient.from_kubeconfig(str(cluster.kubeconfig), cluster.context) as kc:
        classes = await kc.list("storage.k8s.io/v1", "StorageClass")
        default = next(
            c["metadata"]["name"]
            for c in classes
            if c["metadata"]
            .get("annotations", {})
            .get("storageclass.kubernetes.io/is-default-class")
            == "true"
        )
        ns = f"pf-cap-{uuid.uuid4().hex[:6]}"
        await kc.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        cap = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "CSIStorageCapacity",
            "metadata": {"name": "small", "namespace": ns},
            "storageClassName": default,
            "capacity": "2Gi",
        }
        try:
            await kc.create(cap)
            got = by_id(await run_preflight(single(cluster.context), str(cluster.kubeconfig)))
            assert got["storage-capacity"].status is Status.fail
            assert "largest volume (10Gi)" in got["storage-capacity"].reason
            await kc.patch(
                "storage.k8s.io/v1", "CSIStorageCapacity", "small", ns, {"capacity": "50Gi"}
            )
            got = by_id(await run_preflight(single(cluster.context), str(cluster.kubeconfig)))
            assert got["storage-capacity"].status is Status.ok
            assert "reports up to 50Gi" in got["storage-capacity"].reason
        finally:
            await kc.delete("v1", "Namespace", ns)
