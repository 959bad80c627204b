"""Connectivity: can the planes in other clusters reach the gateway's host:port?

From the workstation it is a TCP connect. With ``--probe`` a short-lived Pod in each
plane cluster runs ``nc -z`` against the gateway and its phase says the answer; on
simulated nodes (kwok, which runs no containers) the Pod never finishes, and the check
says so instead of guessing.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from choreoctl.checks.framework import (
    Category,
    Check,
    CheckContext,
    Outcome,
    Scope,
    failed,
    passed,
    skipped,
    warned,
)
from choreoctl.checks.preflight.scratch import scratch_namespace
from choreoctl.topology.model import Topology

PROBE_IMAGE = "library/busybox:1.36"


def remote_planes(topology: Topology) -> list[str]:
    """Planes outside the control plane's cluster: their agents dial the gateway."""
    ctl = topology.control.cluster
    return [p.name for p in topology.planes if p.cluster != ctl]


async def tcp_probe(host: str, port: int, timeout: float) -> tuple[str, str]:
    """``(verdict, text)``: verdict is open, refused, unresolved or timeout."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return "timeout", f"no answer from {host}:{port} within {timeout:g}s (firewalled?)"
    except socket.gaierror as e:
        return "unresolved", f"{host} does not resolve ({e.strerror})"
    except ConnectionRefusedError:
        return "refused", f"{host} answers, nothing listens on {port} yet"
    except OSError as e:
        return "timeout", f"cannot reach {host}:{port}: {e.strerror or e}"
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return "open", f"{host}:{port} accepts connections"


async def check_gateway_local(ctx: CheckContext) -> Outcome:
    remote = remote_planes(ctx.topology)
    if not remote:
        return skipped("every plane shares the control plane's cluster (in-cluster Service DNS)")
    host, port = ctx.topology.gateway.external_host, ctx.topology.gateway.port
    if not host:
        return failed(f"planes {', '.join(remote)} are remote but gateway.externalHost is empty")
    verdict, text = await tcp_probe(host, port, min(5.0, ctx.timeout / 2))
    if verdict == "open":
        return passed(text)
    if verdict == "refused":
        return passed(text + " (expected before the install)")
    if verdict == "unresolved":
        return warned(text + "; create the DNS record before installing")
    return failed(text)


def _probe_pod(ns: str, image: str, host: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "gateway-probe", "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 60,
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "command": ["nc", "-z", "-w", "5", host, str(port)],
                    "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
                }
            ],
        },
    }


async def check_gateway_in_cluster(ctx: CheckContext) -> Outcome:
    topo = ctx.topology
    if not ctx.probe:
        return skipped("run with --probe to test from a Pod in this cluster")
    if topo.control.cluster == ctx.name or not ctx.planes:
        return skipped("no remote plane on this cluster")
    host, port = topo.gateway.external_host, topo.gateway.port
    if not host:
        return failed("gateway.externalHost is empty")
    registry = topo.images.registry.rstrip("/")
    image = f"{registry}/{PROBE_IMAGE}" if registry else PROBE_IMAGE
    async with scratch_namespace(ctx.kc) as ns:
        await ctx.kc.create(_probe_pod(ns, image, host, port))
        deadline = time.monotonic() + max(1.0, ctx.timeout * 0.5)
        pod: dict[str, Any] = {}
        while time.monotonic() < deadline:
            pod = await ctx.kc.get("v1", "Pod", "gateway-probe", ns) or {}
            phase = (pod.get("status") or {}).get("phase", "")
            if phase == "Succeeded":
                return passed(f"a Pod reached {host}:{port}")
            if phase == "Failed":
                return failed(f"a Pod could not reach {host}:{port} (firewall or DNS)")
            await asyncio.sleep(0.5)
        phase = (pod.get("status") or {}).get("phase", "Pending")
        node_name = (pod.get("spec") or {}).get("nodeName", "")
        node = await ctx.kc.get("v1", "Node", node_name) if node_name else None
        ann = ((node or {}).get("metadata") or {}).get("annotations") or {}
        if ann.get("kwok.x-k8s.io/node") == "fake":
            return warned(
                f"probe Pod ran on simulated node {node_name} (kwok runs no containers); "
                "in-cluster reachability not tested"
            )
        return failed(f"probe Pod did not finish (phase {phase}); image {image} pullable?")


CHECKS: tuple[Check, ...] = (
    Check(
        "gateway-reachable-in-cluster",
        Category.connectivity,
        "a Pod in this cluster reaches the gateway (host:8443)",
        "open egress from this cluster to the gateway's externalHost:port",
        check_gateway_in_cluster,
    ),
)

LOCAL_CHECKS: tuple[Check, ...] = (
    Check(
        "gateway-reachable",
        Category.connectivity,
        "the gateway's external host:port is reachable from here",
        "point gateway.externalHost's DNS record at the control plane's LoadBalancer and "
        "open the port in firewalls (`nc -vz HOST 8443`)",
        check_gateway_local,
        scope=Scope.local,
    ),
)
