"""Networking checks: LoadBalancer addresses, shared-IP port collisions, gateway reach."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from choreoctl.checks.framework import (
    Category,
    Check,
    CheckContext,
    Outcome,
    failed,
    passed,
    skipped,
    warned,
)
from choreoctl.checks.preflight.cluster import nodes
from choreoctl.checks.preflight.needs import needs_load_balancer, shared_ip_collisions
from choreoctl.checks.preflight.scratch import scratch_namespace
from choreoctl.topology.model import LoadBalancerMode

# Namespaces/Deployments that betray a LoadBalancer implementation.
LB_SIGNS = ("metallb", "kube-vip", "cloud-controller-manager", "svclb", "cilium", "purelb")


def lb_addresses(svc: dict[str, Any]) -> list[str]:
    """The ingress IPs/hostnames a LoadBalancer Service has been given."""
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [
        str(i.get("ip") or i.get("hostname")) for i in ingress if i.get("ip") or i.get("hostname")
    ]


def _budget(ctx: CheckContext) -> float:
    """Time a probe may wait, leaving room for its clean-up inside the check timeout."""
    return max(1.0, ctx.timeout * 0.5)


async def _probe_lb(ctx: CheckContext) -> Outcome:
    async with scratch_namespace(ctx.kc) as ns:
        svc = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "lb-probe", "namespace": ns},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 80}]},
        }
        await ctx.kc.create(svc)
        deadline = time.monotonic() + _budget(ctx)
        while time.monotonic() < deadline:
            got = await ctx.kc.get("v1", "Service", "lb-probe", ns)
            if got and (addrs := lb_addresses(got)):
                return passed(f"probe Service got {', '.join(addrs)}")
            await asyncio.sleep(0.3)
        return failed(f"probe Service got no address within {_budget(ctx):g}s")


async def _lb_signs(ctx: CheckContext) -> Outcome:
    services = await ctx.listed("v1", "Service")
    lbs = [s for s in services if (s.get("spec") or {}).get("type") == "LoadBalancer"]
    served = [s for s in lbs if lb_addresses(s)]
    if served:
        s = served[0]["metadata"]
        example = f"{s['namespace']}/{s['name']}"
        return passed(f"{len(served)} LoadBalancer Service(s) have addresses (e.g. {example})")
    deployments, daemonsets = await asyncio.gather(
        ctx.listed("apps/v1", "Deployment"), ctx.listed("apps/v1", "DaemonSet")
    )
    found = [
        f"{o['metadata']['namespace']}/{o['metadata']['name']}"
        for o in deployments + daemonsets
        if any(sign in o["metadata"]["name"] for sign in LB_SIGNS)
    ]
    if found:
        return passed(f"LoadBalancer implementation found: {', '.join(found[:3])}")
    if any((n.get("spec") or {}).get("providerID") for n in await nodes(ctx)):
        return passed("nodes carry a cloud providerID (a cloud LoadBalancer is likely)")
    if lbs:
        return warned(f"{len(lbs)} LoadBalancer Service(s) exist, none has an address")
    return warned("no sign of a LoadBalancer implementation; run with --probe to test one")


async def check_load_balancer(ctx: CheckContext) -> Outcome:
    why = needs_load_balancer(ctx.topology, ctx.name)
    if not why:
        return skipped("no LoadBalancer Service on this cluster (ClusterIP only)")
    out = await (_probe_lb(ctx) if ctx.probe else _lb_signs(ctx))
    return type(out)(out.status, out.reason, tuple(f"needed for {w}" for w in why))


async def check_shared_ports(ctx: CheckContext) -> Outcome:
    if ctx.topology.load_balancer_mode is not LoadBalancerMode.shared:
        return skipped("loadBalancer.mode is dedicated: every plane gets its own address")
    if not needs_load_balancer(ctx.topology, ctx.name):
        return skipped("no LoadBalancer Service on this cluster")
    clashes = shared_ip_collisions(ctx.topology, ctx.name)
    if clashes:
        return failed(f"{len(clashes)} port(s) used twice on the shared address", clashes)
    return passed("no two planes share a port on the shared address")


CHECKS: tuple[Check, ...] = (
    Check(
        "load-balancer",
        Category.networking,
        "LoadBalancer Services get an address",
        "install a LoadBalancer implementation (cloud provider, MetalLB, kube-vip) "
        "or verify with `choreoctl preflight --probe`",
        check_load_balancer,
    ),
    Check(
        "shared-ip-ports",
        Category.networking,
        "planes sharing one LoadBalancer address use distinct ports",
        "give each plane distinct `loadBalancer.ports` or set `loadBalancer.mode: dedicated`",
        check_shared_ports,
    ),
)
