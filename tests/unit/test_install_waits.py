"""What "ready" means per kind, and the plan graph built from a topology."""

from __future__ import annotations

from choreoctl.install.manifests import from_objects, render_for_install
from choreoctl.install.options import InstallOptions
from choreoctl.install.steps import Hooks, Session, build_steps
from choreoctl.install.waits import (
    crd_ready,
    deployment_ready,
    service_ready,
    statefulset_ready,
    waits_for,
)
from choreoctl.topology.loader import load_topology


def _deploy(
    replicas: int, available: int, gen: int = 2, observed: int = 2, cond: str = "True"
) -> dict:
    return {
        "kind": "Deployment",
        "metadata": {"generation": gen},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": available,
            "availableReplicas": available,
            "conditions": [{"type": "Available", "status": cond, "reason": "MinimumReplicas"}],
        },
    }


def test_deployment_ready_needs_observed_generation_and_available() -> None:
    assert deployment_ready(_deploy(1, 1)).ready
    stale = deployment_ready(_deploy(1, 1, gen=3, observed=2))
    assert not stale.ready and "not seen the latest spec" in stale.seen
    short = deployment_ready(_deploy(2, 1, cond="False"))
    assert not short.ready and "1/2 available" in short.seen and "Available=False" in short.seen
    assert deployment_ready(_deploy(0, 0)).ready


def test_statefulset_crd_and_service() -> None:
    sts = {
        "metadata": {"generation": 1},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 1, "readyReplicas": 2},
    }
    assert not statefulset_ready(sts).ready and statefulset_ready(sts).seen == "2/3 ready"
    sts["status"]["readyReplicas"] = 3
    assert statefulset_ready(sts).ready
    assert not crd_ready({"status": {}}).ready
    assert crd_ready({"status": {"conditions": [{"type": "Established", "status": "True"}]}}).ready
    lb = {"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}}
    assert not service_ready(lb).ready
    lb["status"]["loadBalancer"] = {"ingress": [{"ip": "10.0.0.1"}]}
    assert service_ready(lb).seen == "address 10.0.0.1"
    assert service_ready({"spec": {"type": "ClusterIP"}}).ready


def test_waits_for_only_kinds_with_a_meaning_of_ready() -> None:
    assert waits_for({"apiVersion": "cert-manager.io/v1", "kind": "Certificate"})
    assert not waits_for({"apiVersion": "example.dev/v1", "kind": "Certificate"})
    assert not waits_for({"apiVersion": "v1", "kind": "ConfigMap"})
    assert waits_for({"apiVersion": "v1", "kind": "PersistentVolumeClaim"})


def _session(ref: str, **opts: object) -> Session:
    topo = load_topology(ref)
    hooks = Hooks(trust=_never, register=None, environments=None)
    return Session(
        render_for_install(topo),
        {},
        InstallOptions(**opts),
        hooks,  # type: ignore[arg-type]
        {c.name: "" for c in topo.clusters},
    )


async def _never(*_a: object) -> bytes:
    raise AssertionError("not run")


def test_multi_region_plan_runs_regions_in_parallel_after_observability() -> None:
    steps = {s.id: s for s in build_steps(_session("multi-region"))}
    assert steps["trust"].deps == ("control",)
    assert steps["control-ready"].deps == ("trust",)
    assert steps["observability-plane/default"].deps == ("control-ready",)
    assert set(steps["build-plane/default"].deps) == {
        "control-ready",
        "observability-plane/default",
        "data-plane/us",
        "data-plane/eu",
        "data-plane/apac",
    }
    data = [s for s in steps.values() if s.title.startswith("data-plane")]
    assert len(data) == 3
    assert len({s.deps for s in data}) == 1  # same dependencies: they run concurrently
    assert {s.cluster for s in data} == {"data-us", "data-eu", "data-apac"}


def test_only_and_skip_select_planes() -> None:
    only = [s.id for s in build_steps(_session("multi-region", only=("data-plane",)))]
    assert "control" not in only and "data-plane/us" in only and "data-plane/eu" in only
    skipped = [s.id for s in build_steps(_session("multi-region", skip=("eu",)))]
    assert "data-plane/eu" not in skipped and "data-plane/us" in skipped and "control" in skipped


def test_dry_run_plan_has_no_trust_step_and_rendered_sets_are_grouped() -> None:
    s = _session("single-cluster", dry_run=True)
    assert "trust" not in [st.id for st in build_steps(s)]
    control = s.rendered.planes[0]
    kinds = {o["kind"] for o in control.objects}
    assert {"CustomResourceDefinition", "Organization", "Deployment"} <= kinds
    empty = from_objects(s.topology, {})
    assert all(not ps.objects for ps in empty.planes)
