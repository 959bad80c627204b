"""Agent checks: cluster-agent pods run and are ready, their logs, and the gateway's view.

"Connected" is read from each plane CR's ``status.agentConnection``, which the
controller manager copies from the gateway; that needs no client certificate for the
gateway's internal port, and when it is stale the ``plane-status`` check says so.
"""

from __future__ import annotations

import re
from typing import Any

from choreoctl.checks.doctor.common import agent_planes_here, plane_cr, pod_ready, restarts
from choreoctl.checks.framework import (
    Category,
    Check,
    CheckContext,
    Outcome,
    failed,
    judged,
    passed,
    skipped,
    warned,
)
from choreoctl.errors import ApiError

AGENT_SELECTOR = "app.kubernetes.io/name=cluster-agent"
ERROR_LINE = re.compile(
    r'\b(error|fatal|panic)\b|"level":\s*"(error|fatal)"|level=(error|fatal)', re.I
)


async def agent_pods(ctx: CheckContext, namespace: str) -> list[dict[str, Any]]:
    """The cluster-agent pods of one plane namespace (fetched once)."""
    pods: list[dict[str, Any]] = await ctx.cached(
        f"agent-pods/{namespace}",
        lambda: ctx.kc.list("v1", "Pod", namespace, label_selector=AGENT_SELECTOR),
    )
    return pods


async def check_agent_pods(ctx: CheckContext) -> Outcome:
    planes = agent_planes_here(ctx)
    if not planes:
        return skipped("no agent plane on this cluster")
    problems: list[str] = []
    seen = 0
    for plane in planes:
        pods = await agent_pods(ctx, plane.namespace)
        if not pods:
            problems.append(f"{plane.name}: no cluster-agent pod in {plane.namespace}")
            continue
        for pod in pods:
            seen += 1
            name = pod["metadata"]["name"]
            if not pod_ready(pod):
                phase = (pod.get("status") or {}).get("phase", "?")
                problems.append(f"{plane.name}: pod {plane.namespace}/{name} is {phase}, not ready")
    return judged(problems, ok=f"{seen} agent pod(s) running and ready")


async def check_agent_logs(ctx: CheckContext) -> Outcome:
    planes = agent_planes_here(ctx)
    if not planes:
        return skipped("no agent plane on this cluster")
    notes: list[str] = []
    problems: list[str] = []
    for plane in planes:
        for pod in await agent_pods(ctx, plane.namespace):
            name = str(pod["metadata"]["name"])
            count = restarts(pod)
            if count:
                problems.append(f"{plane.namespace}/{name}: restarted {count} time(s)")
            try:
                text = await ctx.kc.pod_logs(name, plane.namespace, tail_lines=200)
            except ApiError as e:
                notes.append(f"{plane.namespace}/{name}: logs unavailable (HTTP {e.status})")
                continue
            errors = [line for line in text.splitlines() if ERROR_LINE.search(line)]
            problems += [f"{plane.namespace}/{name}: {line[:200]}" for line in errors[-3:]]
    if problems:
        return warned(problems[0], problems[1:] + notes)
    if notes:
        return passed("no restarts; logs could not be read", notes)
    return passed("no restarts, no error lines in recent logs")


async def check_agent_connected(ctx: CheckContext) -> Outcome:
    planes = agent_planes_here(ctx)
    if not planes:
        return skipped("no agent plane on this cluster")
    problems: list[str] = []
    good: list[str] = []
    for plane in planes:
        cr = await plane_cr(ctx, plane)
        if cr is None:
            problems.append(f"{plane.name}: no {plane.kind.plane_type} CR registered")
            continue
        conn = (cr.get("status") or {}).get("agentConnection") or {}
        if conn.get("connected"):
            good.append(f"{plane.name}: {conn.get('connectedAgents', 1)} agent(s)")
        else:
            msg = conn.get("message") or "the gateway reports no connected agent"
            last = conn.get("lastDisconnectedTime")
            problems.append(f"{plane.name}: {msg}" + (f" (disconnected {last})" if last else ""))
    if problems:
        return failed(problems[0], problems[1:] + good)
    return passed(", ".join(good))


CHECKS: tuple[Check, ...] = (
    Check(
        "agent-pods",
        Category.agents,
        "cluster-agent pods are running and ready",
        "kubectl -n PLANE_NAMESPACE describe pod -l app.kubernetes.io/name=cluster-agent",
        check_agent_pods,
    ),
    Check(
        "agent-logs",
        Category.agents,
        "cluster agents do not restart or log errors",
        "kubectl -n PLANE_NAMESPACE logs -l app.kubernetes.io/name=cluster-agent --tail 100",
        check_agent_logs,
        fatal=False,
    ),
    Check(
        "agent-connected",
        Category.agents,
        "the gateway reports each plane's agent connected",
        "check the agent's logs and that it reaches the gateway (`choreoctl preflight`); "
        "registration: `choreoctl plane list`",
        check_agent_connected,
    ),
)
