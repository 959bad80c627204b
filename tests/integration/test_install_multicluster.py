"""The built-in multi-cluster topology on four real clusters (agents not started): the
gateway's LoadBalancer address is waited for, trust reaches every plane cluster, the
record spans clusters, a re-run re-sends nothing, and uninstall --delete-data leaves no
trace in any cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.testenv import ClusterSet, ClusterSpec

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CLUSTERS = ("control", "data", "build", "observability")  # the topology's context names
CHOREOCTL = str(Path(sys.executable).with_name("choreoctl"))


def _cli(env: ClusterSet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHOREOCTL, *args, "--kubeconfig", str(env.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        env={**os.environ, "CI": "1", "COLUMNS": "200"},
    )


@pytest.fixture(scope="module")
def env(make_clusters: Callable[..., ClusterSet]) -> ClusterSet:
    return make_clusters(*(ClusterSpec(n, nodes=1, cert_manager=True) for n in CLUSTERS))


def test_multi_cluster_install_rerun_and_uninstall(env: ClusterSet) -> None:
    flags = ("-t", "multi-cluster", "--skip-preflight", "--no-wait-agents", "-o", "json")
    first = _cli(env, "install", *flags)
    assert first.returncode == 0, first.stderr
    events = [json.loads(line) for line in first.stdout.splitlines()]
    done = {e["step"]: e["cluster"] for e in events if e.get("state") == "done"}
    assert done["data-plane/default"] == "data" and done["build-plane/default"] == "build"
    assert events[-1]["record"]["state"] == "installed"

    ext = env["control"].kubectl("-n", "openchoreo-control-plane", "get", "svc",
                                 "cluster-gateway-external", "-o",
                                 "jsonpath={.status.loadBalancer.ingress[0].ip}")  # fmt: skip
    assert ext.stdout  # the install waited for the address agents will dial
    for name in ("data", "build", "observability"):
        ca = env[name].kubectl("get", "cm", "-A", "--field-selector",
                               "metadata.name=cluster-gateway-ca", "-o", "name")  # fmt: skip
        assert ca.stdout.strip(), f"trust did not reach cluster {name}"

    again = _cli(env, "install", *flags)
    assert again.returncode == 0, again.stderr
    steps = [json.loads(line) for line in again.stdout.splitlines()]
    notes = [e["message"] for e in steps if e.get("state") == "done" and "-plane/" in e["step"]]
    assert notes and all(" unchanged since the last install" in m for m in notes), notes

    gone = _cli(env, "uninstall", "-t", "multi-cluster", "--yes", "--delete-data", "-o", "json")
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout)["kept"] == []
    for name in CLUSTERS:
        left = env[name].kubectl("get", "ns,pvc", "-A", "-o", "name").stdout
        assert "openchoreo" not in left and "persistentvolumeclaim" not in left, (name, left)
