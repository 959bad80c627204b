"""The concurrent runner: every cluster at once, per-check timeouts, gates and ``--wait``.

Each cluster gets its own client and :class:`CheckContext`; its checks run concurrently
after the gate (the API answers). When the gate fails the cluster's other checks fail
at once with that reason, so an unreachable cluster never stalls the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from choreoctl.checks.framework import (
    Category,
    Check,
    CheckContext,
    Outcome,
    Report,
    Result,
    Status,
    failed,
)
from choreoctl.errors import ChoreoError, ClusterError, InputError

if TYPE_CHECKING:
    from choreoctl.kube.client import KubeClient
    from choreoctl.topology.model import Cluster, Topology


def _result(check: Check, cluster: str, out: Outcome, ms: int) -> Result:
    status = out.status
    if status is Status.fail and not check.fatal:
        status = Status.warn
    return Result(
        check=check.id,
        category=check.category,
        cluster=cluster,
        status=status,
        description=check.description,
        reason=out.reason,
        hint=check.hint,
        docs=check.docs,
        details=out.details,
        duration_ms=ms,
    )


async def run_one(check: Check, ctx: CheckContext) -> Result:
    """Run one check with the context's timeout; errors become a failed result."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(ctx.timeout):  # no extra task, unlike wait_for
            out = await check.run(ctx)
    except TimeoutError:
        out = failed(f"timed out after {ctx.timeout:g}s")
    except ChoreoError as e:
        out = failed(e.message, [e.hint] if e.hint else [])
    ms = int((time.monotonic() - start) * 1000)
    return _result(check, ctx.name, out, ms)


@dataclass
class Target:
    """One place checks run: a cluster (with its client) or the workstation."""

    ctx: CheckContext
    checks: list[Check]
    gate: Check | None = None  # reachability: when it fails, the others fail fast


async def _run_target(target: Target, only: set[str] | None) -> list[Result]:
    ctx = target.ctx
    checks = [c for c in target.checks if only is None or c.id in only]
    results: list[Result] = []
    if target.gate is not None:
        gate = await run_one(target.gate, ctx)
        results.append(gate)
        if gate.status is Status.fail:
            reason = f"not run: cluster {ctx.name!r} is unreachable"
            for c in checks:
                blocked = dataclasses.replace(
                    _result(c, ctx.name, failed(reason), 0), blocked_by=gate.check
                )
                results.append(blocked)
            return results
    results.extend(await asyncio.gather(*(run_one(c, ctx) for c in checks)))
    return results


def _order(results: list[Result], targets: list[Target]) -> list[Result]:
    rank: dict[tuple[str, str], int] = {}
    for t in targets:
        for c in ([t.gate] if t.gate else []) + t.checks:
            rank.setdefault((t.ctx.name, c.id), len(rank))
    cats = list(Category)
    return sorted(
        results,
        key=lambda r: (
            r.cluster != "",
            r.cluster,
            cats.index(r.category),
            rank[(r.cluster, r.check)],
        ),
    )


async def run_targets(
    command: str,
    topology_name: str,
    targets: list[Target],
    *,
    wait: float = 0.0,
    interval: float = 2.0,
) -> Report:
    """Run every target concurrently; with ``wait`` > 0 retry failing checks until then.

    Results keep a stable order: the workstation first, then clusters in topology
    order, categories in :class:`Category` order and checks in definition order.
    """
    start = time.monotonic()
    report = Report(command, topology_name)
    batches = await asyncio.gather(*(_run_target(t, None) for t in targets))
    latest: dict[tuple[str, str], Result] = {}
    for batch in batches:
        for r in batch:
            latest[(r.cluster, r.check)] = r
    deadline = start + wait
    while wait > 0 and any(r.status is Status.fail for r in latest.values()):
        if time.monotonic() + interval > deadline:
            break
        await asyncio.sleep(interval)
        report.attempts += 1
        retry = []
        for t in targets:
            failing = {
                cid
                for (cl, cid), r in latest.items()
                if cl == t.ctx.name and r.status is Status.fail
            }
            if failing:
                t.ctx.forget()
                gate_failing = t.gate is not None and t.gate.id in failing
                retry.append(_run_target(t, None if gate_failing else failing))
        for batch in await asyncio.gather(*retry):
            for r in batch:
                latest[(r.cluster, r.check)] = r
    report.results = _order(list(latest.values()), targets)
    report.duration_s = time.monotonic() - start
    return report


# Checks fan out many small reads per cluster; a few kept-alive connections carry them
# for far less CPU (client and API server) than one new TLS connection per read. An API
# server on this machine (kind, k3d, a tunnel) shares our CPU and answers in a
# millisecond, so one connection is enough there: a second costs both sides a TLS
# handshake (about 4 ms of CPU) for no gain. Measured with bench/preflight.py.
MAX_IN_FLIGHT, MAX_IN_FLIGHT_LOCAL = 2, 1


def in_flight_for(server: str) -> int:
    """How many requests to keep in flight to the API server at URL ``server``."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(server).hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    return MAX_IN_FLIGHT_LOCAL if local else MAX_IN_FLIGHT


def client_for(kubeconfig: str | None, cluster: Cluster, timeout: float) -> KubeClient | str:
    """A client for ``cluster``'s context, or the reason there cannot be one."""
    from choreoctl.kube.client import KubeClient
    from choreoctl.kube.config import endpoint_from_kubeconfig

    try:
        ep = endpoint_from_kubeconfig(kubeconfig, cluster.context)
    except (InputError, ClusterError) as e:
        return e.message
    return KubeClient.from_endpoint(ep, timeout=timeout, max_in_flight=in_flight_for(ep.server))


def parse_duration(text: str) -> float:
    """Seconds from a Go-style duration (``90s``, ``2m``, ``1m30s``, ``1h``) or a number."""
    import re

    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise InputError(
            f"{text!r} is not a duration",
            hint="use a number of seconds or Go-style units, e.g. 90s, 2m, 1m30s",
        )
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


async def run_suite(
    command: str,
    topology: Topology,
    kubeconfig: str | None,
    *,
    gate: Check,
    cluster_checks: Sequence[Check],
    local_checks: Sequence[Check] = (),
    probe: bool = False,
    timeout: float = 10.0,
    wait: float = 0.0,
) -> Report:
    """Run ``cluster_checks`` on every cluster of ``topology`` and ``local_checks`` once.

    Each cluster gets its own client and context; ``gate`` (the API answers) runs first
    on each, and when it fails the cluster's other checks fail at once with its reason.
    """
    targets: list[Target] = []
    clients: list[KubeClient] = []
    peers: dict[str, KubeClient] = {}
    if local_checks:
        local = CheckContext(topology, None, None, probe=probe, timeout=timeout, peers=peers)
        targets.append(Target(local, list(local_checks)))
    for cluster in topology.clusters:
        made = client_for(kubeconfig, cluster, timeout)
        if isinstance(made, str):
            reason = made

            async def no_client(ctx: CheckContext, reason: str = reason) -> Outcome:
                return failed(reason)

            blocked = Check(gate.id, gate.category, gate.description, gate.hint, no_client)
            ctx = CheckContext(topology, cluster, None, probe=probe, timeout=timeout, peers=peers)
            targets.append(Target(ctx, list(cluster_checks), blocked))
            continue
        clients.append(made)
        peers[cluster.name] = made
        ctx = CheckContext(topology, cluster, made, probe=probe, timeout=timeout, peers=peers)
        targets.append(Target(ctx, list(cluster_checks), gate))
    try:
        return await run_targets(command, topology.name, targets, wait=wait)
    finally:
        for target in targets:
            target.ctx.forget()
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
