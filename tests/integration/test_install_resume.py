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

from choreoctl.install.inventory import InstallRecord
from tests.testenv import ClusterSet, ClusterSpec, TestCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CLEAN = ClusterSpec("inst-clean", cert_manager=True)
KILLED = ClusterSpec("inst-kill", cert_manager=True)
BARE = ClusterSpec("inst-bare", nodes=1)  # no cert-manager
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
    env = {**os.environ, "CI": "1"}
    with subprocess.Popen(
        _argv(c), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                if stop(json.loads(line)):
                    time.sleep(delay)
                    proc.send_signal(sig)
                    break
            proc.stdout.read()  # drain what it writes while it exits
            return proc.wait(timeout=200)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _complete(c: TestCluster) -> list[Event]:
    done = subprocess.run(_argv(c), capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _record(c: TestCluster) -> set[tuple[str, bool, str]]:
    out = c.kubectl("-n", "openchoreo-control-plane", "get", "cm", "choreoctl-install-record",
                    "-o", "jsonpath={.data.record\\.json}").stdout  # fmt: skip
    record = InstallRecord.from_dict(json.loads(out))
    assert record.state == "installed"
    assert all(step.state == "done" for step in record.steps.values())
    return {(str(e.ref), e.created, e.origin) for e in record.inventory()["local"]}


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
    return make_clusters(CLEAN, KILLED, BARE)


def test_killed_installs_resume_to_the_same_result_as_a_clean_one(env: ClusterSet) -> None:
    clean, killed = env[CLEAN.name], env[KILLED.name]
    _complete(clean)

    # mid-apply of the control plane (CRDs and namespaces exist, the rest partly)
    rc = _run_until(killed, _when("control", "running"), signal.SIGKILL, 0.4)
    assert rc == -signal.SIGKILL
    # Ctrl-C while trust runs
    rc = _run_until(killed, _when("trust", "running"), signal.SIGINT, 0.0)
    assert rc == 130, rc
    # between steps, after trust, and in the middle of the plane steps
    assert _run_until(killed, _when("trust", "done"), signal.SIGKILL, 0.0) == -signal.SIGKILL
    rc = _run_until(killed, _when("data-plane/default", "running"), signal.SIGKILL, 0.3)
    assert rc == -signal.SIGKILL
    events = _complete(killed)
    assert events[-1]["event"] == "result"
    assert set(events[-1]["steps"].values()) == {"done"}

    assert _record(killed) == _record(clean)
    assert _objects(killed) == _objects(clean)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": "1", "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [CHOREOCTL, *args], capture_output=True, text=True, timeout=280, check=False, env=env
    )


def test_cli_plain_progress_diff_and_uninstall(env: ClusterSet) -> None:
    c = env[CLEAN.name]
    where = ("--kubeconfig", str(c.kubeconfig), "--context", c.context)
    bad = _cli("install", "-t", "single-cluster", *where, "--set", "spec.gateway.port=http")
    assert bad.returncode == 2, bad.stderr
    assert "error[" in bad.stderr and "Traceback" not in bad.stderr

    again = _cli("install", "-t", "single-cluster", *where, "--skip-preflight",
                 "--no-wait-agents")  # fmt: skip
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    # one line per finished step, then the summary
    assert [ln.split()[:2] for ln in lines if ln.startswith("done")] == [
        ["done", "control"],
        ["done", "trust"],
        ["done", "control-ready"],
        ["done", "observability-plane/default"],
        ["done", "data-plane/default"],
        ["done", "build-plane/default"],
    ]
    assert lines[-1].startswith("installed single-cluster: 6/6 step(s) done")

    diff = _cli("diff", "-t", "single-cluster", *where)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "unchanged" in diff.stdout and "update" not in diff.stdout

    gone = _cli("uninstall", "-t", "single-cluster", *where, "--yes", "-o", "json")
    assert gone.returncode == 0, gone.stderr
    report = json.loads(gone.stdout)
    assert len(report["deleted"]) > 50
    assert {k["reason"].split(":")[0] for k in report["kept"]} >= {"a PVC"}
    data = _cli("uninstall", "-t", "single-cluster", *where, "--yes", "--delete-data")
    assert data.returncode == 0, data.stderr
    assert "deleted" in data.stdout
    twice = _cli("uninstall", "-t", "single-cluster", *where, "--yes")
    assert twice.returncode == 2 and "no install record" in twice.stderr


def test_unreachable_cluster_fails_before_any_write(env: ClusterSet, tmp_path: Path) -> None:
    c = env[CLEAN.name]
    dead = tmp_path / "kubeconfig"
    text = c.kubeconfig.read_text().replace(c.server, "https://127.0.0.1:9")
    dead.write_text(text)
    out = _cli("install", "-t", "single-cluster", "--kubeconfig", str(dead), "--context",
               c.context, "--skip-preflight")  # fmt: skip
    assert out.returncode == 3, out.stderr
    assert "error[cluster-unreachable]" in out.stderr


def test_upgrade_prunes_a_dropped_plane_and_keeps_its_data(env: ClusterSet, tmp_path: Path) -> None:
    import asyncio

    import yaml

    from choreoctl.install.diff import run_diff
    from choreoctl.install.manifests import render_for_install
    from choreoctl.install.options import InstallOptions
    from choreoctl.install.upgrade import run_upgrade
    from choreoctl.planes.clients import cluster_clients
    from choreoctl.topology.builtin import builtin_path
    from choreoctl.topology.loader import load_topology

    c = env[CLEAN.name]
    where = ("--kubeconfig", str(c.kubeconfig), "--context", c.context)
    full = _cli("install", "-t", "single-cluster", *where, "--skip-preflight", "--no-wait-agents")
    assert full.returncode == 0, full.stderr

    doc = yaml.safe_load(builtin_path("single-cluster").read_text())
    del doc["spec"]["planes"]["build"]
    doc["spec"]["clusters"][0]["context"] = c.context
    smaller = tmp_path / "no-build.yaml"
    smaller.write_text(yaml.safe_dump(doc))
    rendered = render_for_install(load_topology(str(smaller)))

    async def work() -> tuple[list[Any], Any, Any]:
        async with cluster_clients(rendered.topology, str(c.kubeconfig)) as clients:
            from choreoctl.install.inventory import RecordStore

            store = RecordStore(clients["local"], "openchoreo-control-plane")
            diffs = await run_diff(rendered, clients, record=await store.load())
            opts = InstallOptions(wait_agents=False, timeout=120)
            first = await run_upgrade(rendered, clients, opts, lambda _e: None)
            second = await run_upgrade(rendered, clients, opts, lambda _e: None)
            return diffs, first, second

    diffs, first, second = asyncio.run(work())
    prune = {f"{d.ref.kind}/{d.ref.name}" for d in diffs if d.action == "prune"}
    assert "Deployment/argo-workflow-controller" in prune
    assert "Deployment/cluster-agent" in prune  # the build plane's agent
    deleted = first.pruned.deleted
    assert f"local: Deployment {'openchoreo-build-plane'}/argo-workflow-controller" in deleted
    assert any("BuildPlane" in d for d in deleted)  # its registration goes too
    assert not any("openchoreo-data-plane" in d for d in deleted)
    assert second.pruned.deleted == []
    left = c.kubectl("-n", "openchoreo-build-plane", "get", "deploy,pvc", "-o", "name").stdout
    assert "deployment" not in left and "persistentvolumeclaim/registry-storage" in left
    assert c.kubectl("get", "buildplanes", "-A", "-o", "name").stdout.strip() == ""


def test_missing_kinds_are_found_before_any_write(env: ClusterSet) -> None:
    c = env[BARE.name]
    before = c.kubectl("get", "ns", "-o", "name").stdout
    out = _cli("install", "-t", "single-cluster", "--kubeconfig", str(c.kubeconfig),
               "--context", c.context, "--skip-preflight")  # fmt: skip
    assert out.returncode == 3, out.stderr
    assert "kind Certificate (cert-manager.io/v1) is not served" in out.stderr
    assert "install cert-manager" in out.stderr
    assert c.kubectl("get", "ns", "-o", "name").stdout == before


def test_failed_preflight_aborts_before_any_write(env: ClusterSet) -> None:
    c = env[BARE.name]
    before = c.kubectl("get", "ns", "-o", "name").stdout
    out = _cli("install", "-t", "single-cluster", "--kubeconfig", str(c.kubeconfig),
               "--context", c.context)  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "error[preflight]: preflight failed" in out.stderr
    assert "nothing was installed" in out.stderr
    assert c.kubectl("get", "ns", "-o", "name").stdout == before
