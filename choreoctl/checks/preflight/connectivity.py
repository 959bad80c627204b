"""Connectivity: can the planes in other clusters reach the gateway's host:port?

From the workstation it is a TCP connect. With ``--probe`` a short-lived Pod in each
plane cluster runs choreoctl's own image (the image its agent pulls, through
``images.registry`` and ``images.pullSecrets``) with ``choreoctl agent probe HOST PORT``,
which prints one JSON verdict and the gateway certificate's names; the check reads it
from the Pod's log. On simulated nodes (kwok, which runs no containers) the Pod never
finishes unless a test kubelet plays it, and the check says so instead of guessing.
"""

from __future__ import annotations

import asyncio
import math
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
from choreoctl.errors import ClusterError
from choreoctl.kube.client import KubeClient
from choreoctl.render.images import resolve_images
from choreoctl.runtime.probe import ProbeResult, names_cover, tcp_probe
from choreoctl.topology.model import Topology

POD_NAME = "gateway-probe"


def remote_planes(topology: Topology) -> list[str]:
    """Planes outside the control plane's cluster: their agents dial the gateway."""
    ctl = topology.control.cluster
    return [p.name for p in topology.planes if p.cluster != ctl]


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


def probe_image(topology: Topology) -> str:
    """choreoctl's own image exactly as the charts give it to the agents (registry
    redirect, tag, digest): a plane that can run its agent can run the probe."""
    return resolve_images(topology.images)["choreoctl"]


def probe_pod(
    ns: str, image: str, host: str, port: int, probe_timeout: float, pull_secrets: list[str]
) -> dict[str, Any]:
    """The probe Pod: choreoctl's image running ``agent probe``, as locked down as the
    agent (non-root, read-only root, no token), tiny requests, one try."""
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": max(30, math.ceil(probe_timeout) * 4),
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "probe",
                "image": image,
                "command": ["choreoctl"],
                "args": ["agent", "probe", host, str(port), "--timeout", f"{probe_timeout:g}"],
                "resources": {
                    "requests": {"cpu": "10m", "memory": "32Mi"},
                    "limits": {"memory": "128Mi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD_NAME, "namespace": ns, "labels": {"app": POD_NAME}},
        "spec": spec,
    }


async def _copy_pull_secrets(ctx: CheckContext, ns: str) -> list[str]:
    """Copy ``images.pullSecrets`` from this cluster's plane namespaces into the scratch
    namespace (a Pod can only use Secrets of its own namespace); names not found there
    are still listed, as the agents' Pods list them. Returns what was not found."""
    missing: list[str] = []
    for name in ctx.topology.images.pull_secrets:
        found: dict[str, Any] | None = None
        for plane_ns in dict.fromkeys(p.namespace for p in ctx.planes):
            try:
                found = await ctx.kc.get("v1", "Secret", name, plane_ns)
            except ClusterError:
                found = None
            if found:
                break
        if not found:
            missing.append(name)
            continue
        copy = {"name": name, "namespace": ns}
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": copy}
        body.update({k: found[k] for k in ("type", "data") if k in found})
        try:
            await ctx.kc.create(body)
        except ClusterError:
            missing.append(name)
    return missing


def _terminated(pod: dict[str, Any]) -> str:
    """ "exit code N" (or a waiting reason such as ImagePullBackOff) of the probe container."""
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        state = st.get("state") or {}
        if "terminated" in state:
            return f"exit code {state['terminated'].get('exitCode')}"
        if "waiting" in state:
            return str(state["waiting"].get("reason") or "waiting")
    return ""


async def _verdict(kc: KubeClient, ns: str, pod: dict[str, Any], host: str, port: int) -> Outcome:
    """The check's outcome from the finished Pod's log (worded with the topology's host,
    the probe's own sentence as a detail)."""
    phase = pod["status"]["phase"]
    where = f"the probe Pod ({_terminated(pod) or phase})"
    try:
        result = ProbeResult.from_log(await kc.pod_logs(POD_NAME, ns, container="probe"))
    except ClusterError as e:
        if phase == "Succeeded":
            return passed(f"{where} reached {host}:{port}; its verdict was unreadable: {e.message}")
        return failed(f"{where} could not reach {host}:{port}: {e.message}")
    seen = [f"probe: {result.detail}"]
    here = "a Pod in this cluster"
    if result.verdict == "refused":
        text = f"{here} reaches {host}; nothing listens on {port} yet (expected before the install)"
        return passed(text, seen)
    if result.verdict == "unresolved":
        return failed(f"from {here}, {host} does not resolve", seen)
    if result.verdict == "timeout":
        return failed(f"{here} gets no answer from {host}:{port} (egress firewalled?)", seen)
    names = ", ".join(result.cert_names)
    if not names:
        return warned(f"{here} reaches {host}:{port}, but saw no TLS certificate names", seen)
    if names_cover(result.cert_names, host):
        return passed(f"{here} reaches {host}:{port}; its TLS certificate covers {host}")
    return warned(
        f"{here} reaches {host}:{port}, but its TLS certificate names ({names}) do not cover "
        f"{host}: agents will refuse it",
        [f"certificate names: {names}"],
    )


async def check_gateway_in_cluster(ctx: CheckContext) -> Outcome:
    topo = ctx.topology
    if not ctx.probe:
        return skipped("run with --probe to test from a Pod in this cluster")
    if topo.control.cluster == ctx.name or not ctx.planes:
        return skipped("no remote plane on this cluster")
    host, port = topo.gateway.external_host, topo.gateway.port
    if not host:
        return failed("gateway.externalHost is empty")
    image = probe_image(topo)
    wait = max(1.0, ctx.timeout * 0.5)
    probe_timeout = round(max(1.0, min(5.0, wait / 3)), 1)
    async with scratch_namespace(ctx.kc) as ns:
        missing = await _copy_pull_secrets(ctx, ns)
        secrets = list(topo.images.pull_secrets)
        await ctx.kc.create(probe_pod(ns, image, host, port, probe_timeout, secrets))
        deadline = time.monotonic() + wait
        pod: dict[str, Any] = {}
        while time.monotonic() < deadline:
            pod = await ctx.kc.get("v1", "Pod", POD_NAME, ns) or {}
            if (pod.get("status") or {}).get("phase", "") in ("Succeeded", "Failed"):
                return await _verdict(ctx.kc, ns, pod, host, port)
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
        state = _terminated(pod)
        details = [f"pull secrets not found in the plane namespaces: {', '.join(missing)}"]
        return failed(
            f"probe Pod did not finish within {wait:g}s (phase {phase}"
            f"{', ' + state if state else ''}); image {image} pullable?",
            details if missing else [],
        )


CHECKS: tuple[Check, ...] = (
    Check(
        "gateway-reachable-in-cluster",
        Category.connectivity,
        "a Pod in this cluster reaches the gateway (host:8443)",
        "open egress from this cluster to the gateway's externalHost:port; the gateway's "
        "certificate must name externalHost (gateway.extraSANs)",
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
