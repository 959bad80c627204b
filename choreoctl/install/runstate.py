"""The state one install or upgrade run shares across its steps.

A :class:`Session` holds the clients, the install record and the API servers' clocks;
it records each step's progress as it goes, so a killed install is completed by the
next run. :class:`Hooks` are the steps other modules own (trust, registration,
environments).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from choreoctl.install.apply import Applied
from choreoctl.install.inventory import (
    Entry,
    InstallRecord,
    RecordStore,
    created_by_attempt,
    format_time,
    parse_time,
)
from choreoctl.install.manifests import Rendered
from choreoctl.install.objects import Obj, ObjectRef
from choreoctl.install.options import InstallOptions
from choreoctl.kube.client import KubeClient
from choreoctl.topology.model import Plane, Topology

TrustHook = Callable[[Topology, Mapping[str, KubeClient], float], Awaitable[bytes]]
RegisterHook = Callable[[Topology, Plane, Mapping[str, KubeClient], bool, float], Awaitable[Any]]
EnvironmentsHook = Callable[[Topology, KubeClient], Awaitable[None]]


@dataclass
class Hooks:
    """The steps other modules own; ``None`` leaves the step out of the plan."""

    trust: TrustHook | None = None
    register: RegisterHook | None = None
    environments: EnvironmentsHook | None = None


def default_hooks() -> Hooks:
    """The real trust, registration and environment functions."""
    from choreoctl.planes.environments import ensure_environments
    from choreoctl.planes.register import register_plane
    from choreoctl.trust.gateway_ca import ensure_trust

    async def trust(t: Topology, clients: Mapping[str, KubeClient], timeout: float) -> bytes:
        return await ensure_trust(t, clients, timeout=timeout)

    async def register(
        t: Topology, p: Plane, clients: Mapping[str, KubeClient], wait: bool, timeout: float
    ) -> Any:
        return await register_plane(t, p, clients, wait_connected=wait, timeout=timeout)

    return Hooks(trust, register, ensure_environments)


@dataclass
class Session:
    """The shared state of one run: clients, record, clocks and timings."""

    rendered: Rendered
    clients: Mapping[str, KubeClient]
    options: InstallOptions
    hooks: Hooks
    since: dict[str, str]  # cluster -> server time at the start of this run
    store: RecordStore | None = None  # None in a dry run: nothing is written
    record: InstallRecord | None = None
    # Seconds spent applying, waiting for readiness, and in trust/registration (which
    # wait for certificates and agents): the benchmark compares the rest with kubectl.
    timings: dict[str, float] = field(
        default_factory=lambda: {"apply": 0.0, "wait": 0.0, "hooks": 0.0}
    )
    applied: list[Applied] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)  # when ``since`` was read
    was_installed: bool = False  # the record said "installed" when this run began

    @property
    def topology(self) -> Topology:
        """The topology being installed."""
        return self.rendered.topology

    async def save(self) -> None:
        """Persist the record (not in a dry run)."""
        if self.store is not None and self.record is not None:
            await self.store.save(self.record)

    def now(self, cluster: str) -> str:
        """The API server's clock now: its time at the session start plus elapsed time
        (the server's clock runs at the same rate; no skew with the local clock)."""
        start = parse_time(self.since[cluster])
        if start is None:
            return self.since[cluster]
        return format_time(start + timedelta(seconds=time.monotonic() - self.started))

    async def begin(self, step_id: str, planned: Sequence[tuple[str, ObjectRef]]) -> None:
        """Mark a step running and record what it is about to apply.

        A step whose last attempt did not finish keeps that attempt's start time: objects
        the interrupted attempt created are still recognised as choreoctl's.
        """
        if self.record is None:
            return
        rec = self.record.step(step_id)
        if (
            rec.state == "done"
            and planned
            and all((e := rec.find(key)) is not None and e.uid for key in planned)
        ):
            return  # a re-run of a finished step with nothing new: the record stays as is
        # Every cluster: hooks (trust) create objects in clusters they were not planned in.
        for cluster in [c.name for c in self.topology.clusters]:
            if rec.state == "done" or cluster not in rec.since:
                rec.since[cluster] = self.now(cluster)
        rec.state = "running"
        rec.message = ""
        rec.merge(Entry(c, r, planned=rec.since[c]) for c, r in planned)
        await self.save()

    def learn(
        self, step_id: str, cluster: str, applied: Sequence[Applied], origin: str = "apply"
    ) -> None:
        """Record uids and whether this install created each object.

        Created means: this apply created it (HTTP 201); or it was planned by an attempt
        that was interrupted before recording it and exists since that attempt began; or
        (hooks, which create objects themselves) it exists since this step's attempt began.
        """
        if self.record is None:
            return
        rec = self.record.step(step_id)
        since = rec.since.get(cluster, self.since[cluster])
        entries: list[Entry] = []
        for a in applied:
            if not a.uid:
                continue
            if origin != "apply":
                made = created_by_attempt(a.created_at, since)
            else:
                prior = rec.find((cluster, a.ref))
                pending = prior is not None and not prior.uid and bool(prior.planned)
                made = a.created_now or (
                    pending
                    and prior is not None
                    and created_by_attempt(a.created_at, prior.planned)
                )
            entries.append(Entry(cluster, a.ref, a.uid, made, origin))
        rec.merge(entries)

    def versions(self, step_id: str, cluster: str, live: Mapping[ObjectRef, Obj]) -> None:
        """Remember each object's resourceVersion as the step leaves it."""
        if self.record is None:
            return
        for entry in self.record.step(step_id).objects:
            obj = live.get(entry.ref)
            if entry.cluster == cluster and obj is not None:
                entry.version = str(obj["metadata"].get("resourceVersion", ""))

    async def finish(self, step_id: str, state: str, message: str, digest: str = "") -> None:
        """Mark a step done or failed."""
        if self.record is None:
            return
        rec = self.record.step(step_id)
        rec.state = state
        rec.message = message[:300]
        if digest:
            rec.digest = digest
        await self.save()

    async def observe(self, step_id: str, cluster: str, refs: Sequence[ObjectRef]) -> int:
        """Record objects a hook created (trust Secrets, plane CRs …) that exist now."""
        client = self.clients[cluster]
        found: list[Applied] = []
        for ref in refs:
            live = await client.get(ref.api_version, ref.kind, ref.name, ref.namespace or None)
            if live is not None:
                found.append(Applied.of(ref, live))
        self.learn(step_id, cluster, found, origin="hook")
        return len(found)
