"""``choreoctl status``: one picture of an installed topology, read-only.

Clusters (reachable, version), planes (workloads ready, agent connected), trust (CA
fingerprints, expiry, mismatches) and environments with their data planes, gathered
concurrently from every cluster. An unreachable cluster is a finding, not a crash:
the rest of the picture is still worth showing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from choreoctl.errors import ChoreoError
from choreoctl.kube.client import KubeClient, Obj
from choreoctl.planes.crs import KINDS, org_namespace
from choreoctl.planes.environments import list_environments
from choreoctl.planes.list import list_planes
from choreoctl.topology.model import Plane, PlaneKind, Topology
from choreoctl.trust.status import trust_status


def _workload_row(obj: Obj) -> dict[str, Any]:
    kind = str(obj.get("kind") or "")
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    desired = int(spec.get("replicas", 1) or 0)
    if kind == "Deployment":
        ready = int(status.get("availableReplicas") or 0)
    else:
        ready = int(status.get("readyReplicas") or 0)
    return {
        "kind": kind,
        "name": obj["metadata"]["name"],
        "ready": ready,
        "desired": desired,
        "healthy": ready >= desired,
    }


async def plane_workloads(plane: Plane, client: KubeClient) -> list[dict[str, Any]]:
    """Deployments and StatefulSets of a plane's namespace with ready/desired replicas."""
    rows: list[dict[str, Any]] = []
    for kind in ("Deployment", "StatefulSet"):
        for obj in await client.list("apps/v1", kind, plane.namespace):
            obj.setdefault("kind", kind)
            rows.append(_workload_row(obj))
    return sorted(rows, key=lambda r: (r["kind"], r["name"]))


async def _cluster(name: str, context: str, client: KubeClient) -> dict[str, Any]:
    try:
        version = await client.version()
    except ChoreoError as e:
        return {"name": name, "context": context, "reachable": False, "error": e.message}
    return {
        "name": name,
        "context": context,
        "reachable": True,
        "version": str(version.get("gitVersion", "")),
    }


async def _plane(plane: Plane, client: KubeClient) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": plane.kind.value,
        "name": plane.name,
        "cluster": plane.cluster,
        "namespace": plane.namespace,
    }
    try:
        row["workloads"] = await plane_workloads(plane, client)
    except ChoreoError as e:
        row["workloads"] = []
        row["error"] = e.message
    return row


async def _safe(coro: Any, default: Any) -> tuple[Any, str]:
    try:
        return await coro, ""
    except ChoreoError as e:
        return default, e.message


async def collect_status(
    topology: Topology,
    clients: Mapping[str, KubeClient],
    contexts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Everything ``status`` shows, as plain data; ``healthy`` sums it up.

    ``contexts`` names the kubeconfig context really used per cluster (``--context``
    overrides the topology's), for the report.
    """
    control = clients[topology.control.cluster]
    ns = org_namespace(topology)
    clusters_t = asyncio.gather(
        *(
            _cluster(c.name, (contexts or {}).get(c.name, c.context), clients[c.name])
            for c in topology.clusters
        )
    )
    planes_t = asyncio.gather(*(_plane(p, clients[p.cluster]) for p in topology.planes))
    crs_t = _safe(list_planes(control, ns), [])
    envs_t = _safe(list_environments(control, ns), [])
    trust_t = _safe(trust_status(topology, clients), None)
    clusters, planes, (crs, crs_err), (envs, envs_err), (trust, trust_err) = await asyncio.gather(
        clusters_t, planes_t, crs_t, envs_t, trust_t
    )
    problems: list[str] = []
    problems += [f"cluster {c['name']}: {c['error']}" for c in clusters if not c["reachable"]]
    by_key = {(r["type"], r["name"]): r for r in crs}
    type_names = {PlaneKind.data: "data", PlaneKind.build: "build"}
    type_names[PlaneKind.observability] = "observability"
    for plane, row in zip(topology.planes, planes, strict=True):
        for w in row["workloads"]:
            if not w["healthy"]:
                problems.append(
                    f"{plane.name} ({plane.kind.value}): {w['kind']} {w['name']} "
                    f"{w['ready']}/{w['desired']} ready"
                )
        if "error" in row:
            problems.append(f"{plane.name} ({plane.kind.value}): {row['error']}")
        if plane.kind in KINDS:
            cr = by_key.get((type_names[plane.kind], plane.name))
            row["registered"] = cr is not None
            row["connected"] = bool(cr and cr["connected"])
            row["agents"] = cr["agents"] if cr else 0
            row["lastHeartbeat"] = cr["lastHeartbeat"] if cr else ""
            if cr is None:
                problems.append(f"{plane.name} ({plane.kind.value}): not registered")
            elif not cr["connected"]:
                problems.append(f"{plane.name} ({plane.kind.value}): agent not connected")
    data_planes = {r["name"] for r in crs if r["type"] == "data"}
    for env in envs:
        if env["dataPlane"] not in data_planes:
            problems.append(f"environment {env['name']}: DataPlane {env['dataPlane']} missing")
    for err in (crs_err, envs_err, trust_err):
        if err:
            problems.append(err)
    if trust is not None:
        problems += [f"trust: gateway: {p}" for p in trust["gateway"]["problems"]]
        for row in trust["planes"]:
            problems += [f"trust: {row['plane']} ({row['kind']}): {p}" for p in row["problems"]]
    return {
        "topology": topology.name,
        "healthy": not problems,
        "clusters": clusters,
        "planes": planes,
        "environments": envs,
        "trust": trust,
        "problems": problems,
    }
