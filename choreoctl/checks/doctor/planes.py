"""Plane checks (control plane's cluster): plane CRs reconciled, environments, references."""

from __future__ import annotations

from typing import Any

from choreoctl.checks.doctor.common import conditions, is_control_cluster
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
from choreoctl.errors import ApiError
from choreoctl.planes.crs import API_VERSION, KINDS, org_namespace
from choreoctl.topology.model import PlaneKind

SECRET_STORE_GROUP = "external-secrets.io"


async def _planes(ctx: CheckContext, kind: str) -> list[dict[str, Any]]:
    ns = org_namespace(ctx.topology)
    items: list[dict[str, Any]] = await ctx.cached(
        f"list/{kind}", lambda: ctx.kc.list(API_VERSION, kind, ns)
    )
    return items


async def check_plane_status(ctx: CheckContext) -> Outcome:
    if not is_control_cluster(ctx):
        return skipped("plane CRs live in the control plane's cluster")
    problems: list[str] = []
    count = 0
    for plane in ctx.topology.planes:
        if plane.kind is PlaneKind.control:
            continue
        kind = KINDS[plane.kind]
        crs = {o["metadata"]["name"]: o for o in await _planes(ctx, kind)}
        cr = crs.get(plane.name)
        if cr is None:
            problems.append(f"{kind} {plane.name} is not registered")
            continue
        count += 1
        conds = conditions(cr)
        if not conds:
            problems.append(f"{kind} {plane.name} has no status conditions: not reconciled")
            continue
        generation = int(cr["metadata"].get("generation", 0))
        stale = [
            t for t, c in conds.items() if int(c.get("observedGeneration", generation)) < generation
        ]
        if stale:
            problems.append(
                f"{kind} {plane.name}: conditions {', '.join(stale)} describe generation "
                f"< {generation}: status is stale"
            )
    if problems:
        return failed(problems[0] + "; check controller-manager", problems[1:])
    return passed(f"{count} plane CR(s) reconciled with current conditions")


async def check_environments(ctx: CheckContext) -> Outcome:
    if not is_control_cluster(ctx):
        return skipped("environments live in the control plane's cluster")
    ns = org_namespace(ctx.topology)
    envs = await ctx.kc.list(API_VERSION, "Environment", ns)
    data_planes = {o["metadata"]["name"] for o in await _planes(ctx, "DataPlane")}
    by_name = {e["metadata"]["name"]: e for e in envs}
    problems = [
        f"Environment {e.name} of the topology does not exist"
        for e in ctx.topology.environments
        if e.name not in by_name
    ]
    for name, env in sorted(by_name.items()):
        ref = (env.get("spec") or {}).get("dataPlaneRef", "")
        if ref not in data_planes:
            problems.append(f"Environment {name}: dataPlaneRef {ref!r} is not a DataPlane in {ns}")
        ready = conditions(env).get("Ready")
        if ready is None:
            problems.append(f"Environment {name}: no Ready condition (not reconciled)")
        elif ready.get("status") != "True":
            reason = ready.get("message") or ready.get("reason") or ""
            problems.append(f"Environment {name}: Ready is {ready.get('status')} {reason}".rstrip())
    if problems:
        return failed(problems[0], problems[1:])
    if not by_name:
        return skipped("no Environment")
    return passed(f"{len(by_name)} environment(s) Ready with existing data planes")


async def _secret_store_version(ctx: CheckContext) -> str:
    """The served external-secrets.io version, or "" when its CRD is not installed."""
    for version in ("v1", "v1beta1"):
        try:
            kinds = await ctx.kc.discover(f"{SECRET_STORE_GROUP}/{version}")
        except ApiError:
            continue  # not served as it should be: as good as absent for this check
        if any(k.kind == "ClusterSecretStore" for k in kinds):
            return f"{SECRET_STORE_GROUP}/{version}"
    return ""


async def check_plane_refs(ctx: CheckContext) -> Outcome:
    if not is_control_cluster(ctx):
        return skipped("plane CRs live in the control plane's cluster")
    observability = {o["metadata"]["name"] for o in await _planes(ctx, "ObservabilityPlane")}
    problems: list[str] = []
    warnings: list[str] = []
    checked = 0
    store_api: str | None = None
    for kind in ("DataPlane", "BuildPlane"):
        for cr in await _planes(ctx, kind):
            name = cr["metadata"]["name"]
            spec = cr.get("spec") or {}
            obs = spec.get("observabilityPlaneRef")
            if obs:
                checked += 1
                if obs not in observability:
                    problems.append(f"{kind} {name}: observabilityPlaneRef {obs!r} does not exist")
            store = (spec.get("secretStoreRef") or {}).get("name")
            if not store:
                continue
            checked += 1
            if store_api is None:
                store_api = await _secret_store_version(ctx)
            if not store_api:
                warnings.append(
                    f"{kind} {name}: secretStoreRef {store!r} cannot be checked: "
                    "the external-secrets.io CRDs are not installed"
                )
            elif await ctx.kc.get(store_api, "ClusterSecretStore", store) is None:
                problems.append(f"{kind} {name}: ClusterSecretStore {store!r} does not exist")
    if not (problems or warnings or checked):
        return skipped("no plane references another object")
    return judged(problems, warnings, f"{checked} reference(s) resolve")


CHECKS: tuple[Check, ...] = (
    Check(
        "plane-status",
        Category.planes,
        "plane CRs are registered and their status is current",
        "check controller-manager: kubectl -n openchoreo-control-plane logs "
        "deploy/controller-manager; register missing planes with `choreoctl plane register`",
        check_plane_status,
    ),
    Check(
        "environments",
        Category.planes,
        "environments are Ready and their DataPlane exists",
        "kubectl -n ORGANIZATION get environments -o yaml; create the DataPlane or fix "
        "dataPlaneRef (immutable: re-create the Environment)",
        check_environments,
    ),
    Check(
        "plane-refs",
        Category.planes,
        "observabilityPlaneRef and secretStoreRef resolve",
        "create the referenced ObservabilityPlane / ClusterSecretStore or fix the reference",
        check_plane_refs,
    ),
)
