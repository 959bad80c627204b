"""preflight's in-cluster gateway probe, run for real: a Pod in beta runs ``agent probe``.

The test kubelet plays the probe Pod (a bare choreoctl Pod) as a local process, maps its
HOST PORT arguments as the test DNS would, serves its output as the Pod's log and writes
its exit as the Pod's phase; the check reads the verdict from that log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from choreoctl.checks.framework import CheckContext, Outcome, Status
from choreoctl.checks.preflight.connectivity import check_gateway_in_cluster
from choreoctl.checks.preflight.scratch import SCRATCH_LABEL, SCRATCH_PREFIX
from choreoctl.kube.client import KubeClient
from choreoctl.topology.loader import load_topology
from choreoctl.topology.model import PlaneKind, Topology
from tests.unit.test_runtime_probe import blackhole, tls_server

pytestmark = pytest.mark.cluster


@pytest.fixture
async def beta(clusters: Any) -> AsyncIterator[KubeClient]:
    c = clusters["beta"]
    async with KubeClient.from_kubeconfig(str(c.kubeconfig), c.context) as client:
        yield client


def topology(host: str = "", port: int = 0) -> Topology:
    """multi-cluster with the control plane in alpha and every other plane in beta."""
    base = load_topology("multi-cluster")
    ctl = base.control.cluster
    topo = dataclasses.replace(
        base,
        clusters=tuple(
            dataclasses.replace(c, context="alpha" if c.name == ctl else "beta")
            for c in base.clusters
        ),
    )
    gw = topo.gateway
    return dataclasses.replace(
        topo,
        gateway=dataclasses.replace(
            gw, external_host=host or gw.external_host, port=port or gw.port
        ),
    )


async def run_check(topo: Topology, kc: KubeClient, timeout: float = 20) -> Outcome:
    data = topo.cluster(topo.plane("default", PlaneKind.data).cluster)
    return await check_gateway_in_cluster(CheckContext(topo, data, kc, probe=True, timeout=timeout))


def pod_logs(kl: Any) -> list[str]:
    """The logs of every probe Pod the kubelet ran (they outlive the Pods)."""
    logs = sorted((kl.kubelet.workdir / "pods").glob(f"*{SCRATCH_PREFIX}*/log"))
    return [p.read_text() for p in logs]


def verdicts(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


async def no_scratch_left(kc: KubeClient, timeout: float = 60) -> None:
    """Every scratch namespace is gone: deleted and finalized, not just terminating."""
    deadline = time.monotonic() + timeout
    while True:
        left = await kc.list("v1", "Namespace", label_selector=f"{SCRATCH_LABEL}=true")
        if not left:
            return
        if time.monotonic() > deadline:
            names = [(n["metadata"]["name"], n.get("status")) for n in left]
            raise AssertionError(f"scratch namespaces left behind: {names}")
        await asyncio.sleep(0.5)


async def test_nothing_listening_yet_passes_from_a_pod_that_really_ran(
    clusters: Any, kubelet: Any, beta: KubeClient
) -> None:
    kl = kubelet([clusters["beta"]])
    out = await run_check(topology(), beta)
    assert out.status is Status.ok, (out, kl.logs())
    assert "reaches gateway.example.com; nothing listens on 8443 yet" in out.reason
    assert "expected before the install" in out.reason
    (log,) = pod_logs(kl)
    # the Pod ran `choreoctl agent probe gateway.example.com 8443`, mapped to loopback
    assert "agent probe 127.0.0.1" in log.splitlines()[0]
    assert [v["verdict"] for v in verdicts(log)] == ["refused"]
    await no_scratch_left(beta)


async def test_certificate_names_are_checked_against_the_host(
    clusters: Any, kubelet: Any, beta: KubeClient, tmp_path: Path
) -> None:
    kl = kubelet([clusters["beta"]])
    async with tls_server(tmp_path, ["gateway.other.test"], ["10.9.9.9"]) as port:
        wrong = await run_check(topology("127.0.0.1", port), beta)
    assert wrong.status is Status.warn, (wrong, kl.logs())
    assert "(gateway.other.test, 10.9.9.9) do not cover 127.0.0.1" in wrong.reason
    assert wrong.details == ("certificate names: gateway.other.test, 10.9.9.9",)
    async with tls_server(tmp_path, ["gateway.example.com"], ["127.0.0.1"]) as port:
        right = await run_check(topology("127.0.0.1", port), beta)
    assert right.status is Status.ok, (right, kl.logs())
    assert "certificate covers 127.0.0.1" in right.reason
    names = sorted(verdicts(log)[0]["certNames"] for log in pod_logs(kl))
    assert names == [["gateway.example.com", "127.0.0.1"], ["gateway.other.test", "10.9.9.9"]]
    await no_scratch_left(beta)


async def test_unresolvable_host_and_firewalled_port_fail(
    clusters: Any, kubelet: Any, beta: KubeClient
) -> None:
    kl = kubelet([clusters["beta"]])
    gone = await run_check(topology("gateway.probe.invalid"), beta)
    assert gone.status is Status.fail, (gone, kl.logs())
    assert "gateway.probe.invalid does not resolve" in gone.reason
    with blackhole() as port:
        slow = await run_check(topology("127.0.0.1", port), beta)
    assert slow.status is Status.fail, (slow, kl.logs())
    assert f"no answer from 127.0.0.1:{port}" in slow.reason
    assert "within" in slow.details[0]
    codes = sorted(v["verdict"] for log in pod_logs(kl) for v in verdicts(log))
    assert codes == ["timeout", "unresolved"]
    await no_scratch_left(beta)


async def test_ctrl_c_during_the_probe_leaves_nothing_behind(
    clusters: Any, kubelet: Any, beta: KubeClient
) -> None:
    kl = kubelet([clusters["beta"]])
    with blackhole() as port:
        task = asyncio.create_task(run_check(topology("127.0.0.1", port), beta, timeout=40))
        deadline = time.monotonic() + 30
        while not kl.kubelet.runner.runs and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert kl.kubelet.runner.runs, kl.logs()  # the probe process is running now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await no_scratch_left(beta)
    deadline = time.monotonic() + 15  # the Pod went with its namespace: its process too
    while kl.kubelet.runner.runs and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not kl.kubelet.runner.runs
