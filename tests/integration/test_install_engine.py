"""The install engine against a real cluster (with cert-manager): dry run, install,
no-op re-run, diff, conflicts, uninstall. Agents are not started here (no kubelet), so
registration does not wait for them to connect.

The tests run in file order on one cluster of their own and build on each other.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest

from choreoctl.errors import ApiError, ApplyConflict
from choreoctl.install.diff import run_diff
from choreoctl.install.engine import Event
from choreoctl.install.inventory import InstallRecord, RecordStore
from choreoctl.install.manifests import Rendered, render_for_install
from choreoctl.install.options import InstallOptions
from choreoctl.install.session import InstallResult, run_install
from choreoctl.install.uninstall import run_uninstall
from choreoctl.kube.client import KubeClient
from choreoctl.planes.clients import cluster_clients
from choreoctl.topology.loader import load_topology
from tests.testenv import ClusterSet, ClusterSpec

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SPEC = ClusterSpec("inst-a", cert_manager=True)
PLANE_NAMESPACES = (
    "openchoreo-control-plane",
    "openchoreo-data-plane",
    "openchoreo-build-plane",
    "openchoreo-observability-plane",
)
WORKFLOW_CM = ("v1", "ConfigMap", "workflow-controller-configmap", "openchoreo-build-plane")


@pytest.fixture(scope="module")
def env(make_clusters: Callable[..., ClusterSet]) -> ClusterSet:
    return make_clusters(SPEC)


def _rendered(ctx: str, sets: tuple[str, ...] = ()) -> Rendered:
    topo = load_topology("single-cluster", sets=(f"spec.clusters[0].context={ctx}", *sets))
    return render_for_install(topo)


async def _with_clients(
    env: ClusterSet, rendered: Rendered, work: Callable[[Mapping[str, KubeClient]], Awaitable[Any]]
) -> Any:
    async with cluster_clients(rendered.topology, str(env.kubeconfig)) as clients:
        return await work(clients)


async def _install(env: ClusterSet, **opts: Any) -> tuple[InstallResult, list[Event]]:
    rendered = _rendered(SPEC.name)
    events: list[Event] = []
    options = InstallOptions(wait_agents=False, timeout=120, **opts)
    result = await _with_clients(
        env, rendered, lambda c: run_install(rendered, c, options, events.append)
    )
    return result, events


async def _live_versions(env: ClusterSet) -> dict[str, str]:
    """resourceVersion of every object in the record (what a no-op must not change)."""
    rendered = _rendered(SPEC.name)

    async def work(clients: Mapping[str, KubeClient]) -> dict[str, str]:
        kc = clients["local"]
        record = await RecordStore(kc, "openchoreo-control-plane").load()
        assert record is not None
        out: dict[str, str] = {}
        for entry in record.inventory()["local"]:
            r = entry.ref
            live = await kc.get(r.api_version, r.kind, r.name, r.namespace or None)
            assert live is not None, f"{r} recorded but missing"
            out[str(r)] = live["metadata"]["resourceVersion"]
        return out

    result: dict[str, str] = await _with_clients(env, rendered, work)
    return result


async def test_dry_run_checks_with_the_server_and_persists_nothing(env: ClusterSet) -> None:
    c = env["inst-a"]
    result, events = await _install(env, dry_run=True)
    assert result.dry_run and result.applied > 0
    assert result.skipped  # namespaced objects whose namespace the install would create
    assert all(state == "done" for state in result.steps.values())
    names = c.kubectl("get", "ns", "-o", "name").stdout
    for ns in PLANE_NAMESPACES:
        assert f"namespace/{ns}" not in names
    assert "openchoreo.dev" not in c.kubectl("get", "crd", "-o", "name").stdout
    assert "trust" not in result.steps  # nothing is issued or registered in a dry run


async def test_install_records_everything_and_a_rerun_changes_nothing(env: ClusterSet) -> None:
    first, events = await _install(env)
    assert set(first.steps.values()) == {"done"}, first.steps
    assert first.record["state"] == "installed"
    assert {e.step for e in events if e.state.value == "done"} >= {
        "control",
        "trust",
        "control-ready",
        "data-plane/default",
        "build-plane/default",
        "observability-plane/default",
    }
    before = await _live_versions(env)
    assert len(before) >= first.applied  # chart objects plus trust and plane CRs
    again, _ = await _install(env)
    assert set(again.steps.values()) == {"done"}
    assert await _live_versions(env) == before  # server-side apply changed nothing
    c = env["inst-a"]
    planes = c.kubectl("get", "dataplanes,buildplanes,observabilityplanes", "-A", "-o", "name")
    assert len(planes.stdout.split()) == 3
    # an object deleted by hand is put back by the next run, and is still choreoctl's
    c.kubectl("-n", "openchoreo-data-plane", "delete", "serviceaccount", "kgateway")
    await _install(env)
    after = await _live_versions(env)
    key = "ServiceAccount openchoreo-data-plane/kgateway"
    assert after[key] != before[key]
    assert {k: v for k, v in after.items() if k != key} == {
        k: v for k, v in before.items() if k != key
    }


async def test_diff_reports_a_manual_edit_as_conflict_and_shows_it_with_force(
    env: ClusterSet,
) -> None:
    c = env["inst-a"]
    rendered = _rendered(SPEC.name)
    clean = await _with_clients(env, rendered, lambda cl: run_diff(rendered, cl))
    changed = [d for d in clean if d.action != "unchanged"]
    assert changed == [], [(str(d.ref), d.action, d.diff[:300]) for d in changed]

    c.kubectl(
        "-n",
        WORKFLOW_CM[3],
        "patch",
        "configmap",
        WORKFLOW_CM[2],
        "--type=merge",
        "-p",
        '{"data": {"registry": "mirror.example:5000"}}',
        "--field-manager=ops-person",
    )
    diffs = await _with_clients(env, rendered, lambda cl: run_diff(rendered, cl))
    hit = [d for d in diffs if d.ref.name == WORKFLOW_CM[2]]
    assert [d.action for d in hit] == ["conflict"]
    assert "ops-person" in hit[0].note and ".data.registry" in hit[0].note
    forced = await _with_clients(
        env, rendered, lambda cl: run_diff(rendered, cl, force_conflicts=True)
    )
    [upd] = [d for d in forced if d.ref.name == WORKFLOW_CM[2]]
    assert upd.action == "update"
    assert "-  registry: mirror.example:5000" in upd.diff
    assert all(d.action == "unchanged" for d in forced if d.ref.name != WORKFLOW_CM[2])


async def test_conflict_names_manager_and_field_and_force_takes_over(env: ClusterSet) -> None:
    c = env["inst-a"]
    with pytest.raises(ApplyConflict) as err:
        await _install(env)
    text = " ".join(p.line() for p in err.value.problems)
    assert "ops-person" in text and ".data.registry" in text
    assert f"ConfigMap {WORKFLOW_CM[3]}/{WORKFLOW_CM[2]}" in text
    result, _ = await _install(env, force_conflicts=True)
    assert set(result.steps.values()) == {"done"}
    live = c.kubectl(
        "-n", WORKFLOW_CM[3], "get", "cm", WORKFLOW_CM[2], "-o", "jsonpath={.data.registry}"
    ).stdout
    assert live == "registry.openchoreo-build-plane.svc.cluster.local:5000"


async def test_uninstall_removes_exactly_the_inventory(env: ClusterSet) -> None:
    c = env["inst-a"]
    c.kubectl(
        "-n", "openchoreo-data-plane", "create", "configmap", "not-ours", "--from-literal=k=v"
    )
    rendered = _rendered(SPEC.name)

    async def inventory(clients: Mapping[str, KubeClient]) -> list[Any]:
        record = await RecordStore(clients["local"], "openchoreo-control-plane").load()
        assert record is not None
        return record.inventory()["local"]

    entries = await _with_clients(env, rendered, inventory)
    result = await _with_clients(env, rendered, lambda cl: run_uninstall(rendered.topology, cl))
    assert result.deleted

    async def survivors(clients: Mapping[str, KubeClient]) -> dict[str, bool]:
        kc = clients["local"]
        out = {}
        for e in entries:
            r = e.ref
            try:
                live = await kc.get(r.api_version, r.kind, r.name, r.namespace or None)
            except ApiError as err:
                assert err.status == 404  # the kind itself is gone with its CRD
                live = None
            out[str(r)] = live is not None
        return out

    alive = await _with_clients(env, rendered, survivors)
    for e in entries:
        r = e.ref
        if r.kind == "PersistentVolumeClaim":
            assert alive[str(r)], f"{r} is data: kept without --delete-data"
        elif r.kind == "Namespace" and r.name in (
            "openchoreo-data-plane",
            "openchoreo-control-plane",
            "openchoreo-build-plane",
            "openchoreo-observability-plane",
        ):
            assert alive[str(r)], f"{r} still holds foreign objects or kept PVCs"
        elif e.created:
            assert not alive[str(r)], f"{r} was created by the install but survived"
    assert (
        c.kubectl(
            "-n", "openchoreo-data-plane", "get", "cm", "not-ours", "-o", "name"
        ).stdout.strip()
        == "configmap/not-ours"
    )
    assert "openchoreo.dev" not in c.kubectl("get", "crd", "-o", "name").stdout
    # The kept PVCs are still choreoctl's: the record stays with just them (and their
    # namespaces), so `uninstall --delete-data` can finish the job later.
    out = c.kubectl("-n", "openchoreo-control-plane", "get", "cm", "choreoctl-install-record",
                    "-o", "jsonpath={.data.record\\.json}").stdout  # fmt: skip
    record = InstallRecord.from_dict(json.loads(out))
    assert record.state == "uninstalled"
    assert {e.ref.kind for es in record.inventory().values() for e in es} == {
        "PersistentVolumeClaim",
        "Namespace",
    }


async def test_uninstall_delete_data_removes_kept_data_and_namespaces(env: ClusterSet) -> None:
    c = env["inst-a"]
    c.kubectl("-n", "openchoreo-data-plane", "delete", "configmap", "not-ours")
    rendered = _rendered(SPEC.name)
    result = await _with_clients(
        env, rendered, lambda cl: run_uninstall(rendered.topology, cl, delete_data=True)
    )
    deleted = " ".join(result.deleted)
    assert "PersistentVolumeClaim openchoreo-control-plane/openchoreo-database" in deleted
    left = c.kubectl("get", "ns", "-o", "name").stdout
    for ns in PLANE_NAMESPACES:
        assert f"namespace/{ns}" not in left, result.kept
    assert "persistentvolumeclaim" not in c.kubectl("get", "pvc", "-A", "-o", "name").stdout
