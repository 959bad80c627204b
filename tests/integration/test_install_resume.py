"""Kill the installer at several points, run it again, and compare with a clean install.

Two fresh clusters: one gets a clean install, the other an install killed (SIGKILL, and
once SIGINT) at several points and then completed by re-running the same command. The
install records and the objects in the clusters must match: nothing lost, nothing twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.testenv import ClusterSet, ClusterSpec, TestCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CLEAN = ClusterSpec("inst-clean", cert_manager=True)
KILLED = ClusterSpec("inst-kill", cert_manager=True)
CHOREOCTL = str(Path(sys.executable).with_name("choreoctl"))
NAMESPACES = (
    "openchoreo-control-plane",
    "openchoreo-data-plane",
    "openchoreo-build-plane",
    "openchoreo-observability-plane",
    "default-organization",
)
NAMESPACED = "deploy,sts,rs,svc,cm,secret,sa,role,rolebinding,pvc,issuers,certificates"
CLUSTER_SCOPED = "crd,clusterrole,clusterrolebinding,organizations"
PLANE_CRS = "dataplanes,buildplanes,observabilityplanes,environments"

Event = dict[str, Any]


def _argv(c: TestCluster) -> list[str]:
    return [
        CHOREOCTL, "install", "--topology", "single-cluster", "--kubeconfig", str(c.kubeconfig),
        "--context", c.context, "--skip-preflight", "--no-wait-agents", "--timeout", "120",
        "-o", "json",
    ]  # fmt: skip


def _run_until(c: TestCluster, stop: Callable[[Event], bool], sig: int, delay: float) -> int:
    """Run install; when ``stop`` matches an event, wait ``delay`` and send ``sig``."""
    proc = subprocess.Popen(
        _argv(c), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CI": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            event = json.loads(line)
            if stop(event):
                time.sleep(delay)
                proc.send_signal(sig)
                break
        return proc.wait(timeout=200)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _complete(c: TestCluster) -> list[Event]:
    done = subprocess.run(_argv(c), capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _record(c: TestCluster) -> set[tuple[str, ...]]:
    out = c.kubectl("-n", "openchoreo-control-plane", "get", "cm", "choreoctl-install-record",
                    "-o", "jsonpath={.data.record\\.json}").stdout  # fmt: skip
    record = json.loads(out)
    assert record["state"] == "installed"
    return {
        (o["kind"], o["namespace"], o["name"], str(o["created"]), o["origin"])
        for step in record["steps"].values()
        for o in step["objects"]
    }


def _objects(c: TestCluster) -> dict[str, list[str]]:
    """Object names in the install's namespaces and cluster-wide (no system ones)."""
    out: dict[str, list[str]] = {}
    for ns in NAMESPACES:
        names = c.kubectl("-n", ns, "get", NAMESPACED, "-o", "name").stdout.split()
        # ReplicaSet names carry a hash of the pod template: equal hashes = same template.
        out[ns] = sorted(names)
    wide = c.kubectl("get", CLUSTER_SCOPED, "-o", "name").stdout.split()
    out["cluster"] = sorted(n for n in wide if "openchoreo" in n or "organization" in n)
    out["planes"] = sorted(c.kubectl("get", PLANE_CRS, "-A", "-o", "name").stdout.split())
    return out


def _when(step: str, state: str) -> Callable[[Event], bool]:
    return lambda e: e.get("step") == step and e.get("state") == state


@pytest.fixture(scope="module")
def env(make_clusters: Callable[..., ClusterSet]) -> ClusterSet:
    return make_clusters(CLEAN, KILLED)


def test_killed_installs_resume_to_the_same_result_as_a_clean_one(env: ClusterSet) -> None:
    clean, killed = env[CLEAN.name], env[KILLED.name]
    _complete(clean)

    # mid-apply of the control plane (CRDs and namespaces exist, the rest partly)
    rc = _run_until(killed, _when("control", "running"), signal.SIGKILL, 0.4)
    assert rc == -signal.SIGKILL
    # Ctrl-C while trust runs
    rc = _run_until(killed, _when("trust", "running"), signal.SIGINT, 0.0)
    assert rc in (130, 0, 3), rc  # 0/3: it finished or failed before the signal landed
    # between steps, after trust, and in the middle of the plane steps
    assert _run_until(killed, _when("trust", "done"), signal.SIGKILL, 0.0) == -signal.SIGKILL
    rc = _run_until(killed, _when("data-plane/default", "running"), signal.SIGKILL, 0.3)
    assert rc == -signal.SIGKILL
    events = _complete(killed)
    assert events[-1]["event"] == "result"
    assert set(events[-1]["steps"].values()) == {"done"}

    assert _record(killed) == _record(clean)
    assert _objects(killed) == _objects(clean)
