"""A cluster that goes away in the middle of an install, then comes back.

Two pairs of fresh clusters hold the same two-cluster topology (control, observability
and build planes in one cluster, the data plane alone in the other): one pair gets a
clean install. In the other, an API server is SIGKILLed at several points of the
install (the data cluster while trust writes to it, while its plane is applied and while
the plane registers; the control cluster, which keeps the record, while the data plane
is installed). Each time the install fails with a one-screen error naming the cluster
(exit 3, no traceback) and the record says what failed; once the API server is back,
the same command completes the install, with the same record and objects as the clean one.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from choreoctl.errors import ClusterUnreachable
from choreoctl.install.inventory import InstallRecord
from choreoctl.topology.builtin import builtin_path
from tests.integration.test_install_resume import NAMESPACED, _objects
from tests.testenv import ClusterSet, ClusterSpec, TestCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CHOREOCTL = str(Path(sys.executable).with_name("choreoctl"))
CLEAN = ("loss-ref-control", "loss-ref-data")  # contexts of topology clusters control, data
LOST = ("loss-control", "loss-data")
DATA_STEP = "data-plane/default"
RECORD = ("-n", "openchoreo-control-plane", "get", "cm", "choreoctl-install-record",
          "-o", "jsonpath={.data.record\\.json}")  # fmt: skip

Event = dict[str, Any]


def _topology(path: Path) -> Path:
    """multi-cluster on two clusters: the data plane alone in cluster ``data``."""
    doc = yaml.safe_load(builtin_path("multi-cluster").read_text())
    doc["spec"]["clusters"] = [
        {"name": "control", "context": "control"},
        {"name": "data", "context": "data"},
    ]
    for kind in ("build", "observability"):
        doc["spec"]["planes"][kind]["cluster"] = "control"
    path.write_text(yaml.safe_dump(doc))
    return path


def _sets(contexts: tuple[str, str]) -> list[str]:
    return [f"spec.clusters[{i}].context={ctx}" for i, ctx in enumerate(contexts)]


def _argv(env: ClusterSet, topology: Path, contexts: tuple[str, str]) -> list[str]:
    sets = [arg for s in _sets(contexts) for arg in ("--set", s)]
    return [
        CHOREOCTL, "install", "-t", str(topology), "--kubeconfig", str(env.kubeconfig), *sets,
        "--skip-preflight", "--no-wait-agents", "--timeout", "60", "-o", "json",
    ]  # fmt: skip


def _complete(argv: list[str]) -> list[Event]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=200, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _lose(argv: list[str], victim: TestCluster, step: str, delay: float) -> dict[str, str]:
    """Run install; ``delay`` s after ``step`` starts, kill ``victim``'s API server. The
    run must fail cleanly, naming the cluster; the server is back on return."""
    killed = False
    try:
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            try:
                for line in proc.stdout:
                    event = json.loads(line)
                    if event.get("step") == step and event.get("state") == "running":
                        time.sleep(delay)
                        victim.kill_apiserver()
                        killed = True
                        break
                events = [json.loads(line) for line in proc.stdout]
                stderr = proc.stderr.read()
                rc = proc.wait(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    finally:
        if killed:
            victim.start_apiserver()
    assert killed, f"the install ended before step {step} ran"
    assert rc == 3, stderr
    assert "Traceback" not in stderr, stderr
    assert len(stderr.splitlines()) <= 25, stderr  # one screen
    assert "error[cluster-unreachable]" in stderr or "error[wait-timeouts]" in stderr, stderr
    name = "data" if victim.context == LOST[1] else "control"
    assert f"{name} ({victim.context})" in stderr, stderr
    states = {e["step"]: e["state"] for e in events if e.get("event") == "step"}
    assert "failed" in states.values(), states
    return states


def _record(c: TestCluster) -> InstallRecord:
    return InstallRecord.from_dict(json.loads(c.kubectl(*RECORD).stdout))


def _inventory(c: TestCluster) -> set[tuple[str, str, bool, str]]:
    record = _record(c)
    assert record.state == "installed"
    assert all(step.state == "done" for step in record.steps.values())
    return {
        (e.cluster, str(e.ref), e.created, e.origin)
        for entries in record.inventory().values()
        for e in entries
    }


def _plane_objects(c: TestCluster) -> dict[str, list[str]]:
    """Like ``_objects`` for a cluster holding only the data plane (no openchoreo CRDs)."""
    names = c.kubectl("-n", "openchoreo-data-plane", "get", NAMESPACED, "-o", "name").stdout
    wide = c.kubectl("get", "crd,clusterrole,clusterrolebinding", "-o", "name").stdout
    return {
        "openchoreo-data-plane": sorted(names.split()),
        "cluster": sorted(n for n in wide.split() if "openchoreo" in n),
    }


def _lose_while_registering(env: ClusterSet, topology: Path) -> None:
    """In process: the data cluster goes away exactly when its plane registers."""
    from choreoctl.install.manifests import render_for_install
    from choreoctl.install.options import InstallOptions
    from choreoctl.install.session import run_install
    from choreoctl.install.steps import default_hooks
    from choreoctl.kube.client import KubeClient
    from choreoctl.planes.clients import cluster_clients
    from choreoctl.topology.loader import load_topology
    from choreoctl.topology.model import Plane, PlaneKind, Topology

    data = env[LOST[1]]
    rendered = render_for_install(load_topology(str(topology), sets=_sets(LOST)))
    hooks = default_hooks()
    real = hooks.register
    assert real is not None

    async def register(
        t: Topology, p: Plane, clients: Mapping[str, KubeClient], wait: bool, timeout: float
    ) -> Any:
        if p.kind is PlaneKind.data:
            data.kill_apiserver()
        return await real(t, p, clients, wait, timeout)

    hooks.register = register

    async def run() -> None:
        async with cluster_clients(rendered.topology, str(env.kubeconfig)) as clients:
            opts = InstallOptions(wait_agents=False, timeout=60)
            await run_install(rendered, clients, opts, lambda _e: None, hooks=hooks)

    try:
        with pytest.raises(ClusterUnreachable, match=rf"data \({LOST[1]}\)"):
            asyncio.run(run())
    finally:
        data.start_apiserver()


@pytest.fixture(scope="module")
def env(make_clusters: Callable[..., ClusterSet]) -> ClusterSet:
    return make_clusters(*(ClusterSpec(n, nodes=1, cert_manager=True) for n in CLEAN + LOST))


def test_install_completes_after_a_cluster_comes_back(env: ClusterSet, tmp_path: Path) -> None:
    topology = _topology(tmp_path / "two-clusters.yaml")
    _complete(_argv(env, topology, CLEAN))
    argv = _argv(env, topology, LOST)
    control, data = env[LOST[0]], env[LOST[1]]

    # trust writes the gateway CA into the data cluster: it is gone
    states = _lose(argv, data, "trust", 0.0)
    assert states["trust"] == "failed" and states[DATA_STEP] == "cancelled", states
    record = _record(control)
    assert record.state == "failed" and record.steps["trust"].state == "failed"

    # the data plane's objects are half applied when its cluster goes
    states = _lose(argv, data, DATA_STEP, 0.3)
    assert states[DATA_STEP] == "failed", states
    assert states["build-plane/default"] == "cancelled", states
    record = _record(control)
    assert record.state == "failed" and record.steps[DATA_STEP].state == "failed"
    assert record.steps["observability-plane/default"].state == "done"

    # the plane registers when its cluster goes: the step is failed in the record too
    _lose_while_registering(env, topology)
    record = _record(control)
    assert record.state == "failed" and record.steps[DATA_STEP].state == "failed"

    # the control cluster, which keeps the record, goes as the data plane step starts
    _lose(argv, control, DATA_STEP, 0.0)
    assert _record(control).state != "installed"

    events = _complete(argv)
    assert events[-1]["event"] == "result"
    assert set(events[-1]["steps"].values()) == {"done"}
    for c in (control, data):  # the clusters' own components survived the outages
        assert c.dead_processes() == [], c.name

    clean_control, clean_data = env[CLEAN[0]], env[CLEAN[1]]
    assert _inventory(control) == _inventory(clean_control)
    assert _objects(control) == _objects(clean_control)
    assert _plane_objects(data) == _plane_objects(clean_data)
