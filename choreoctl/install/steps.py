"""The install plan as a graph of steps, and what each step does.

Per plane: server-side apply → wait → register. Around them: trust after the control
plane's objects exist (the gateway and agents mount what trust writes), the control
plane's workloads ready (the gateway) before any agent plane starts, environments once
their data planes are registered. Steps record their progress in the install record as
they go, so a killed install is completed by the next run.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from choreoctl.install.apply import Applied, apply_set, current_objects
from choreoctl.install.engine import Step
from choreoctl.install.inventory import (
    Entry,
    InstallRecord,
    RecordStore,
    created_by_attempt,
    format_time,
    parse_time,
)
from choreoctl.install.manifests import PlaneSet, Rendered
from choreoctl.install.objects import Obj, ObjectRef
from choreoctl.install.options import InstallOptions
from choreoctl.install.waits import wait_objects
from choreoctl.kube.client import KubeClient
from choreoctl.topology.model import Plane, PlaneKind, TLSIssuer, Topology

# Workloads whose pods mount what the trust step writes: waited for after trust.
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})

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


def _selected(plane: Plane, only: Sequence[str], skip: Sequence[str]) -> bool:
    names = {plane.name, plane.kind.value, plane.kind.name}
    if only and not names & set(only):
        return False
    return not names & set(skip)


async def _apply_step(
    s: Session,
    step_id: str,
    ps: PlaneSet,
    report: Callable[[str], None],
    *,
    wait_kinds: Callable[[Obj], bool],
) -> str:
    client = s.clients[ps.cluster]
    await s.begin(step_id, [(ps.cluster, ObjectRef.of(o)) for o in ps.objects])
    try:
        t0 = time.monotonic()
        same = await _unchanged(s, step_id, ps)
        applied = await apply_set(
            client,
            [o for o in ps.objects if ObjectRef.of(o) not in same],
            force=s.options.force_conflicts,
            dry_run=s.options.dry_run,
            concurrency=s.options.concurrency,
            crd_timeout=s.options.timeout,
        )
        applied += [Applied.of(ref, live) for ref, live in same.items()]
        s.timings["apply"] += time.monotonic() - t0
        s.applied.extend(applied)
        s.learn(step_id, ps.cluster, applied)
        await s.save()
        skipped = sum(1 for a in applied if a.skipped)
        waited = 0
        known = {a.ref: a.live for a in applied if a.live is not None}
        if s.options.wait and not s.options.dry_run:
            todo = [o for o in ps.objects if wait_kinds(o)]
            report(f"waiting for {len(todo)} object(s)")
            t1 = time.monotonic()
            known.update(await wait_objects(client, todo, timeout=s.options.timeout, known=known))
            s.timings["wait"] += time.monotonic() - t1
            waited = len(todo)
        s.versions(step_id, ps.cluster, known)
    except BaseException as e:
        await s.finish(step_id, "failed", str(e) or type(e).__name__)
        raise
    await s.finish(step_id, "done", "", ps.digest())
    text = f"{len(applied) - skipped - len(same)} applied"
    if same:
        text += f", {len(same)} unchanged since the last install"
    if skipped:
        text += f", {skipped} not checkable until the install creates their namespace or CRD"
    return text + (f", {waited} waited for" if waited else "")


async def _unchanged(s: Session, step_id: str, ps: PlaneSet) -> dict[ObjectRef, Obj]:
    """Objects of a finished step that nobody touched since: same manifests (digest) and
    the live resourceVersion it recorded. Re-applying them would be a no-op, so a re-run
    skips them; anything edited, replaced or missing is applied again."""
    rec = s.record.steps.get(step_id) if s.record is not None else None
    if (
        rec is None
        or rec.state != "done"
        or rec.digest != ps.digest()
        or s.options.force_conflicts
        or s.options.dry_run
    ):
        return {}
    recorded = {e.ref: e.version for e in rec.objects if e.cluster == ps.cluster and e.version}
    if not recorded:
        return {}
    live = await current_objects(s.clients[ps.cluster], ps.objects)
    return {
        ref: obj
        for ref, obj in live.items()
        if recorded.get(ref) == obj["metadata"].get("resourceVersion")
    }


def _agent_refs(plane: Plane, issuer: TLSIssuer) -> list[ObjectRef]:
    """What trust writes into an agent plane namespace (cert-manager writes the Secrets
    itself unless choreoctl is the issuer)."""
    ns = plane.namespace
    # Trust creates the namespace when the plane step has not yet: it is then choreoctl's.
    refs = [
        ObjectRef("v1", "Namespace", "", ns),
        ObjectRef("v1", "ConfigMap", ns, "cluster-gateway-ca"),
    ]
    if issuer is TLSIssuer.choreoctl:
        refs += [
            ObjectRef("v1", "Secret", ns, n) for n in ("cluster-agent-tls", "cluster-agent-ca")
        ]
    return refs


def _control_refs(plane: Plane, issuer: TLSIssuer) -> list[ObjectRef]:
    if issuer is not TLSIssuer.choreoctl:
        return []
    ns = plane.namespace
    names = ("cluster-gateway-ca", "cluster-gateway-tls", "controller-manager-tls")
    return [ObjectRef("v1", "Secret", ns, n) for n in names]


def build_steps(s: Session) -> list[Step]:
    """The install graph for ``s.rendered`` with ``--only``/``--skip`` applied."""
    t = s.topology
    opts = s.options
    steps: list[Step] = []
    chosen = [ps for ps in s.rendered.planes if _selected(ps.plane, opts.only, opts.skip)]
    control = t.control
    control_ps = s.rendered.of(control)
    real = not opts.dry_run

    def apply_step(
        step_id: str, ps: PlaneSet, wait_kinds: Callable[[Obj], bool]
    ) -> Callable[[Callable[[str], None]], Awaitable[str]]:
        async def run(report: Callable[[str], None]) -> str:
            return await _apply_step(s, step_id, ps, report, wait_kinds=wait_kinds)

        return run

    gate: list[str] = []  # what agent planes wait for
    if any(ps.plane is control for ps in chosen):
        steps.append(
            Step(
                "control",
                f"apply {control.name}",
                apply_step("control", control_ps, lambda o: o.get("kind") not in WORKLOAD_KINDS),
                (),
                control.cluster,
                control.name,
            )
        )
        gate = ["control"]
    if s.hooks.trust is not None and real:
        trust = s.hooks.trust

        async def run_trust(report: Callable[[str], None]) -> str:
            await s.begin("trust", [])
            try:
                t0 = time.monotonic()
                pem = await trust(t, s.clients, opts.timeout)
                s.timings["hooks"] += time.monotonic() - t0
                n = await s.observe(
                    "trust", control.cluster, _control_refs(control, t.trust_issuer)
                )
                for p in t.planes:
                    if p.kind is not PlaneKind.control:
                        n += await s.observe("trust", p.cluster, _agent_refs(p, t.trust_issuer))
            except BaseException as e:
                await s.finish("trust", "failed", str(e))
                raise
            await s.finish("trust", "done", "")
            return (
                f"gateway CA distributed ({pem.count(b'BEGIN CERTIFICATE')} cert(s)), {n} objects"
            )

        steps.append(
            Step(
                "trust",
                "gateway CA to every plane",
                run_trust,
                tuple(gate),
                control.cluster,
                "trust",
            )
        )
        gate = ["trust"]
    if any(ps.plane is control for ps in chosen):

        async def run_ready(report: Callable[[str], None]) -> str:
            if not opts.wait or opts.dry_run:
                return "not waited (--dry-run or --no-wait)"
            todo = [o for o in control_ps.objects if o.get("kind") in WORKLOAD_KINDS]
            report(f"waiting for {len(todo)} workload(s)")
            t1 = time.monotonic()
            last = await wait_objects(s.clients[control.cluster], todo, timeout=opts.timeout)
            s.timings["wait"] += time.monotonic() - t1
            s.versions("control", control.cluster, last)  # as the workloads settled
            await s.save()
            return f"{len(todo)} workload(s) ready"

        steps.append(
            Step(
                "control-ready",
                "control plane workloads ready (gateway)",
                run_ready,
                tuple(gate),
                control.cluster,
                control.name,
            )
        )
        gate = ["control-ready"]

    by_kind: dict[PlaneKind, list[str]] = {}
    for ps in chosen:
        if ps.plane is control:
            continue
        kind = ps.plane.kind
        deps = list(gate)
        if kind in (PlaneKind.data, PlaneKind.build):
            deps += by_kind.get(PlaneKind.observability, [])
        if kind is PlaneKind.build:
            deps += by_kind.get(PlaneKind.data, [])
        step_id = f"{ps.plane.kind.value}/{ps.plane.name}"
        steps.append(_plane_step(s, step_id, ps, tuple(deps)))
        by_kind.setdefault(kind, []).append(step_id)

    rendered_envs = any(o.get("kind") == "Environment" for o in control_ps.objects)
    if (
        s.hooks.environments is not None
        and real
        and t.environments
        and not rendered_envs  # the organization chart renders them: applied with control
        and by_kind.get(PlaneKind.data)
    ):
        envs = s.hooks.environments

        async def run_envs(report: Callable[[str], None]) -> str:
            await s.begin("environments", [])
            await envs(t, s.clients[control.cluster])
            from choreoctl.planes.crs import API_VERSION, org_namespace

            ns = org_namespace(t)
            refs = [ObjectRef(API_VERSION, "Environment", ns, e.name) for e in t.environments]
            n = await s.observe("environments", control.cluster, refs)
            await s.finish("environments", "done", "")
            return f"{n} environment(s)"

        steps.append(
            Step(
                "environments",
                "environments",
                run_envs,
                tuple(by_kind[PlaneKind.data]),
                control.cluster,
                "environments",
            )
        )
    return steps


def _plane_step(s: Session, step_id: str, ps: PlaneSet, deps: tuple[str, ...]) -> Step:
    plane = ps.plane
    register = s.hooks.register

    async def run(report: Callable[[str], None]) -> str:
        text = await _apply_step(s, step_id, ps, report, wait_kinds=lambda o: True)
        if register is None or s.options.dry_run:
            return text
        report("registering with the control plane")
        t0 = time.monotonic()
        await register(s.topology, plane, s.clients, s.options.wait_agents, s.options.timeout)
        s.timings["hooks"] += time.monotonic() - t0
        from choreoctl.planes.crs import API_VERSION, kind_of, org_namespace

        ns = org_namespace(s.topology)
        control = s.topology.control.cluster
        await s.observe(
            step_id,
            control,
            [
                ObjectRef("v1", "Namespace", "", ns),
                ObjectRef(API_VERSION, "Organization", "", s.topology.organization),
                ObjectRef(API_VERSION, kind_of(plane), ns, plane.name),
            ],
        )
        await s.save()
        connected = "agent connected" if s.options.wait_agents else "agent not waited for"
        return f"{text}; registered, {connected}"

    return Step(step_id, f"{plane.kind.value} {plane.name}", run, deps, ps.cluster, plane.name)
