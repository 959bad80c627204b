"""Cluster checks: the API server answers, its version, RBAC, nodes and their capacity."""

from __future__ import annotations

from typing import Any

from choreoctl.checks.framework import (
    Category,
    Check,
    CheckContext,
    Outcome,
    failed,
    passed,
    warned,
)
from choreoctl.checks.preflight.needs import cluster_needs, planes_on
from choreoctl.checks.quantity import (
    bytes_of,
    format_bytes,
    format_cpu,
    millicores,
    pod_requests,
    version_at_least,
)
from choreoctl.errors import ApiError

MIN_KUBERNETES = "1.32.0"
MIN_NODES = 3
MIN_NODE_CPU_M = 4000
MIN_NODE_MEMORY = 8 * 2**30


async def server_version(ctx: CheckContext) -> dict[str, Any]:
    """``/version`` of the cluster, fetched once per run."""
    data: dict[str, Any] = await ctx.cached("version", ctx.kc.version)
    return data


async def nodes(ctx: CheckContext) -> list[dict[str, Any]]:
    """Every Node of the cluster, fetched once per run."""
    return await ctx.listed("v1", "Node")


def _ready(node: dict[str, Any]) -> bool:
    conds = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _schedulable(node: dict[str, Any]) -> bool:
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return False
    taints = spec.get("taints") or []
    return not any(t.get("effect") in ("NoSchedule", "NoExecute") for t in taints)


async def usable_nodes(ctx: CheckContext) -> list[dict[str, Any]]:
    """Nodes that are Ready and accept ordinary pods (no NoSchedule taint, not cordoned)."""
    return [n for n in await nodes(ctx) if _ready(n) and _schedulable(n)]


def _alloc(node: dict[str, Any], key: str = "allocatable") -> tuple[int, int]:
    res = (node.get("status") or {}).get(key) or {}
    return millicores(res.get("cpu", 0)), bytes_of(res.get("memory", 0))


async def check_api(ctx: CheckContext) -> Outcome:
    version = await server_version(ctx)
    return passed(f"{ctx.kc.server} answers ({version.get('gitVersion', '?')})")


async def check_version(ctx: CheckContext) -> Outcome:
    version = str((await server_version(ctx)).get("gitVersion", ""))
    if version_at_least(version, MIN_KUBERNETES):
        return passed(version)
    return failed(f"server is {version}; choreoctl needs Kubernetes ≥ {MIN_KUBERNETES}")


async def check_rbac(ctx: CheckContext) -> Outcome:
    try:
        kinds = await ctx.kc.discover("rbac.authorization.k8s.io/v1")
    except ApiError as e:
        return failed(f"rbac.authorization.k8s.io/v1 is not served (HTTP {e.status})")
    if not any(k.kind == "ClusterRole" for k in kinds):
        return failed("rbac.authorization.k8s.io/v1 is not served")
    return passed("rbac.authorization.k8s.io/v1 is served")


async def check_node_count(ctx: CheckContext) -> Outcome:
    usable = await usable_nodes(ctx)
    total = len(await nodes(ctx))
    names = [n["metadata"]["name"] for n in usable]
    seen = f"{len(usable)} ready, schedulable node(s) of {total}"
    if len(usable) >= MIN_NODES:
        return passed(seen)
    if not usable:
        return failed(f"{seen}; pods cannot be scheduled")
    big = all(
        c >= MIN_NODE_CPU_M and m >= MIN_NODE_MEMORY
        for c, m in (_alloc(n, "capacity") for n in usable)
    )
    if big:
        return warned(f"{seen}: fine for development, no redundancy for production", names)
    return failed(f"{seen}; need {MIN_NODES} (or one dev node with ≥ 4 CPU / 8Gi)", names)


async def check_node_capacity(ctx: CheckContext) -> Outcome:
    small = []
    usable = await usable_nodes(ctx)
    for node in usable:
        cpu, mem = _alloc(node, "capacity")
        if cpu < MIN_NODE_CPU_M or mem < MIN_NODE_MEMORY:
            small.append(f"{node['metadata']['name']}: {format_cpu(cpu)} CPU, {format_bytes(mem)}")
    if not usable:
        return failed("no ready, schedulable nodes")
    if small:
        return failed(f"{len(small)} node(s) below 4 CPU / 8Gi", small)
    return passed(f"every node has ≥ 4 CPU / 8Gi ({len(usable)} checked)")


async def check_allocatable(ctx: CheckContext) -> Outcome:
    need = cluster_needs(ctx.topology, ctx.name)
    usable = await usable_nodes(ctx)
    names = {n["metadata"]["name"] for n in usable}
    cpu = sum(_alloc(n)[0] for n in usable)
    mem = sum(_alloc(n)[1] for n in usable)
    ours = {p.namespace for p in planes_on(ctx.topology, ctx.name)}
    pods = await ctx.listed("v1", "Pod")
    used_cpu = used_mem = 0
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") not in names:
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if pod["metadata"].get("namespace") in ours:
            continue  # a re-run: the install replaces these pods, they are already in `need`
        c, m = pod_requests(pod)
        used_cpu += c
        used_mem += m
    free_cpu, free_mem = cpu - used_cpu, mem - used_mem
    seen = (
        f"needs {format_cpu(need.cpu_m)} CPU, {format_bytes(need.memory)}; "
        f"free {format_cpu(free_cpu)} CPU, {format_bytes(free_mem)} "
        f"(allocatable {format_cpu(cpu)} CPU, {format_bytes(mem)} minus running pods)"
    )
    if need.cpu_m <= free_cpu and need.memory <= free_mem:
        return passed(seen, need.lines)
    short = []
    if need.cpu_m > free_cpu:
        short.append(f"CPU short by {format_cpu(need.cpu_m - free_cpu)}")
    if need.memory > free_mem:
        short.append(f"memory short by {format_bytes(need.memory - free_mem)}")
    return failed(f"{'; '.join(short)}: {seen}", need.lines)


CHECKS: tuple[Check, ...] = (
    Check(
        "k8s-version",
        Category.cluster,
        "Kubernetes server version is ≥ 1.32",
        "upgrade the cluster to Kubernetes 1.32 or newer",
        check_version,
    ),
    Check(
        "rbac-enabled",
        Category.cluster,
        "RBAC is enabled",
        "start kube-apiserver with --authorization-mode including RBAC",
        check_rbac,
    ),
    Check(
        "node-count",
        Category.nodes,
        "at least 3 ready, schedulable nodes",
        "add nodes (`kubectl get nodes` shows which are NotReady or cordoned)",
        check_node_count,
    ),
    Check(
        "node-capacity",
        Category.nodes,
        "every node has ≥ 4 CPU and 8Gi memory",
        "use larger nodes (≥ 4 CPU / 8Gi); `kubectl describe nodes` shows capacity",
        check_node_capacity,
    ),
    Check(
        "allocatable",
        Category.nodes,
        "free allocatable CPU and memory cover the topology's requests",
        "add nodes or lower `components.<name>.resources.requests` / replicas in the topology",
        check_allocatable,
    ),
)

API_CHECK = Check(
    "api-reachable",
    Category.cluster,
    "the API server answers",
    "check the kubeconfig context, the server address and the network "
    "(`kubectl --context CONTEXT get --raw /version`)",
    check_api,
)
