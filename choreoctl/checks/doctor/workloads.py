"""Workload checks: the rendered Deployments are Available, PVCs Bound, LoadBalancer
Services addressed. The expected objects come from the renderer (the same function
``render`` and ``install`` use); everything else found in plane namespaces is checked too.
"""

from __future__ import annotations

from typing import Any

from choreoctl.checks.doctor.common import conditions
from choreoctl.checks.framework import (
    Category,
    Check,
    CheckContext,
    Outcome,
    failed,
    judged,
    passed,
    skipped,
)
from choreoctl.checks.preflight.networking import lb_addresses
from choreoctl.errors import ChoreoError


async def rendered(ctx: CheckContext, kind: str) -> set[tuple[str, str]]:
    """``(namespace, name)`` of every ``kind`` object the charts render for this cluster."""

    async def render() -> list[tuple[str, str, str]]:
        from choreoctl.render.renderer import render_topology

        out = render_topology(ctx.topology)
        return [
            (m.kind, m.namespace, m.name)
            for (cluster, _), ms in out.directories.items()
            if cluster == ctx.name
            for m in ms
        ]

    try:
        objects: list[tuple[str, str, str]] = await ctx.cached("rendered", render)
    except ChoreoError:
        return set()
    return {(ns, name) for k, ns, name in objects if k == kind}


async def _in_plane_namespaces(
    ctx: CheckContext, api_version: str, kind: str
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for ns in sorted({p.namespace for p in ctx.planes}):
        found += await ctx.kc.list(api_version, kind, ns)
    return found


async def check_deployments(ctx: CheckContext) -> Outcome:
    if not ctx.planes:
        return skipped("no plane on this cluster")
    expected = await rendered(ctx, "Deployment")
    found = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d
        for d in await _in_plane_namespaces(ctx, "apps/v1", "Deployment")
    }
    problems = [f"{ns}/{name} does not exist" for ns, name in sorted(expected - set(found))]
    for (ns, name), dep in sorted(found.items()):
        avail = conditions(dep).get("Available", {})
        if avail.get("status") != "True":
            why = avail.get("message") or "no Available condition"
            status = dep.get("status") or {}
            problems.append(
                f"{ns}/{name}: {status.get('availableReplicas', 0)}/"
                f"{(dep.get('spec') or {}).get('replicas', 1)} available ({why})"
            )
    return judged(problems, ok=f"{len(found)} Deployment(s) Available ({len(expected)} rendered)")


async def check_pvcs(ctx: CheckContext) -> Outcome:
    pvcs = await _in_plane_namespaces(ctx, "v1", "PersistentVolumeClaim") if ctx.planes else []
    if not pvcs:
        return skipped("no PersistentVolumeClaim in the plane namespaces")
    pending = [
        f"{p['metadata']['namespace']}/{p['metadata']['name']}: "
        f"{(p.get('status') or {}).get('phase', 'Pending')}"
        for p in pvcs
        if (p.get("status") or {}).get("phase") != "Bound"
    ]
    if pending:
        return failed(f"{len(pending)} PVC(s) not Bound", pending)
    return passed(f"{len(pvcs)} PVC(s) Bound")


async def check_lb_services(ctx: CheckContext) -> Outcome:
    services = await _in_plane_namespaces(ctx, "v1", "Service") if ctx.planes else []
    lbs = [s for s in services if (s.get("spec") or {}).get("type") == "LoadBalancer"]
    if not lbs:
        return skipped("no LoadBalancer Service in the plane namespaces")
    waiting = [
        f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in lbs if not lb_addresses(s)
    ]
    if waiting:
        return failed(f"{len(waiting)} LoadBalancer Service(s) have no address", waiting)
    return passed(
        f"{len(lbs)} LoadBalancer Service(s) have addresses",
        [f"{s['metadata']['name']}: {', '.join(lb_addresses(s))}" for s in lbs],
    )


CHECKS: tuple[Check, ...] = (
    Check(
        "deployments-available",
        Category.resources,
        "every rendered Deployment exists and is Available",
        "kubectl -n NAMESPACE describe deployment NAME (events say why: image, resources, "
        "scheduling); re-run `choreoctl install` for missing ones",
        check_deployments,
    ),
    Check(
        "pvcs-bound",
        Category.resources,
        "PersistentVolumeClaims are Bound",
        "kubectl -n NAMESPACE describe pvc NAME; check the default StorageClass "
        "(`choreoctl preflight`)",
        check_pvcs,
    ),
    Check(
        "lb-addresses",
        Category.resources,
        "LoadBalancer Services have an address",
        "check the cluster's LoadBalancer implementation (`choreoctl preflight --probe`)",
        check_lb_services,
    ),
)
