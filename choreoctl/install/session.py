"""One install run end to end: validate and render, connect, record, run the graph.

Everything that can be checked without writing is checked first (topology, rendering,
reachability of every cluster), so bad input changes nothing. The record is bootstrapped
in the control plane namespace before the first step and updated as steps progress.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from choreoctl import __version__
from choreoctl.errors import ChoreoError, ClusterError, Problem
from choreoctl.install.apply import apply_set, unserved_kinds
from choreoctl.install.engine import EventSink, State, run_graph
from choreoctl.install.inventory import (
    InstallRecord,
    RecordStore,
    server_time,
)
from choreoctl.install.manifests import Rendered, topology_hash
from choreoctl.install.objects import Obj
from choreoctl.install.options import InstallOptions
from choreoctl.install.runstate import Hooks, Session
from choreoctl.install.steps import build_steps
from choreoctl.kube.client import KubeClient
from choreoctl.topology.model import Topology

PreflightHook = Callable[[], Awaitable[None]]


@dataclass
class InstallResult:
    """What an install run did, for people (summary) and machines (``-o json``)."""

    topology: str
    dry_run: bool
    steps: dict[str, str] = field(default_factory=dict)  # id -> final state
    applied: int = 0
    skipped: list[str] = field(default_factory=list)  # dry run: objects not checkable
    seconds: float = 0.0
    apply_seconds: float = 0.0
    wait_seconds: float = 0.0
    hook_seconds: float = 0.0  # trust and registration (they wait for certificates, agents)
    record: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``-o json``."""
        return {
            "topology": self.topology,
            "dryRun": self.dry_run,
            "steps": dict(self.steps),
            "applied": self.applied,
            "skipped": list(self.skipped),
            "seconds": round(self.seconds, 3),
            "applySeconds": round(self.apply_seconds, 3),
            "waitSeconds": round(self.wait_seconds, 3),
            "hookSeconds": round(self.hook_seconds, 3),
            "record": dict(self.record),
        }


async def clocks(clients: Mapping[str, KubeClient]) -> dict[str, str]:
    """Each cluster's clock; also the reachability check before anything is written."""
    names = sorted(clients)
    times = await asyncio.gather(*(server_time(clients[n]) for n in names))
    return dict(zip(names, times, strict=True))


async def preflight_gate(topology: Topology, kubeconfig: str | None) -> None:
    """Run preflight; a failed check stops the install before anything is written."""
    from choreoctl.checks.preflight import run_preflight

    report = await run_preflight(topology, kubeconfig)
    if report.failed:
        failed = [r for r in report.results if r.status.value == "fail"]
        raise ChoreoError(
            f"preflight failed: {len(failed)} check(s); nothing was installed",
            hint="fix what the checks report (choreoctl preflight shows all of them), "
            "or re-run with --skip-preflight if you know better",
            reference="preflight",
            problems=tuple(
                Problem(f"{r.description}: {r.reason}", where=r.cluster, hint=r.hint)
                for r in failed
            ),
        )


async def check_kinds(rendered: Rendered, clients: Mapping[str, KubeClient]) -> None:
    """Refuse to start when a cluster lacks a kind the render uses (cert-manager …)."""
    per_cluster: dict[str, list[Obj]] = {}
    for ps in rendered.planes:
        per_cluster.setdefault(ps.cluster, []).extend(ps.objects)
    names = sorted(per_cluster)
    missing = await asyncio.gather(*(unserved_kinds(clients[n], per_cluster[n]) for n in names))
    problems = [
        Problem(f"kind {kind} ({api_version}) is not served", where=name)
        for name, kinds in zip(names, missing, strict=True)
        for api_version, kind in kinds
    ]
    if problems:
        raise ClusterError(
            "the clusters lack kinds this topology's manifests use; nothing was changed",
            hint="cert-manager.io kinds: install cert-manager (choreoctl preflight checks "
            "it), or use trust.issuer: choreoctl and a byo TLS strategy for the planes",
            problems=tuple(problems),
        )


async def _bootstrap(s: Session) -> None:
    """Create the control plane namespace and load (or start) the record in it."""
    control = s.topology.control
    client = s.clients[control.cluster]
    ns_obj = next(
        (
            o
            for o in s.rendered.of(control).objects
            if o.get("kind") == "Namespace" and o["metadata"]["name"] == control.namespace
        ),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": control.namespace}},
    )
    [applied] = await apply_set(client, [ns_obj])  # 201 when this run created it
    store = RecordStore(client, control.namespace)
    record = await store.load() or InstallRecord(s.topology.name)
    record.topology = s.topology.name
    record.topology_hash = topology_hash(s.topology)
    record.version = __version__
    s.was_installed = record.state == "installed"
    record.state = "installing"
    s.store, s.record = store, record
    s.learn("control", control.cluster, [applied])
    await s.save()


async def run_install(
    rendered: Rendered,
    clients: Mapping[str, KubeClient],
    options: InstallOptions,
    on_event: EventSink,
    *,
    hooks: Hooks | None = None,
    preflight: PreflightHook | None = None,
) -> InstallResult:
    """Install ``rendered`` into ``clients`` (keyed by topology cluster name)."""
    from choreoctl.install.runstate import default_hooks

    start = time.monotonic()
    since = await clocks(clients)
    if preflight is not None:
        await preflight()
    await check_kinds(rendered, clients)
    s = Session(rendered, clients, options, hooks or default_hooks(), since)
    steps = build_steps(s)
    if not options.dry_run:
        await _bootstrap(s)
    result = InstallResult(rendered.topology.name, options.dry_run)
    try:
        await run_graph(steps, on_event)
    finally:
        result.steps = {st.id: st.state.value for st in steps}
        result.applied = sum(1 for a in s.applied if not a.skipped)
        result.skipped = [str(a.ref) for a in s.applied if a.skipped]
        result.seconds = time.monotonic() - start
        result.apply_seconds = s.timings["apply"]
        result.wait_seconds = s.timings["wait"]
        result.hook_seconds = s.timings["hooks"]
        if s.record is not None:
            ok = all(st.state is State.done for st in steps)
            # A partial run (--only/--skip) of an installed topology leaves it installed.
            complete = ok and (s.was_installed or not (options.only or options.skip))
            s.record.state = "installed" if complete else ("installing" if ok else "failed")
            await asyncio.shield(s.save())
            result.record = {
                "state": s.record.state,
                "objects": sum(len(v) for v in s.record.inventory().values()),
                "topologyHash": s.record.topology_hash,
            }
    return result
