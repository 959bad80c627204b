"""The install plan as a graph of steps, and what each step does.

The state the steps share (clients, the install record, clocks) is
:class:`~choreoctl.install.runstate.Session`; ``Hooks``, ``Session`` and
``default_hooks`` are importable from here too.

Per plane: server-side apply → wait → register. Around them: trust after the control
plane's objects exist (the gateway and agents mount what trust writes), the control
plane's workloads ready (the gateway) before any agent plane starts, environments once
their data planes are registered. Steps record their progress in the install record as
they go, so a killed install is completed by the next run.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from choreoctl.install.apply import Applied, apply_set, current_objects
from choreoctl.install.engine import Step
from choreoctl.install.manifests import PlaneSet
from choreoctl.install.objects import Obj, ObjectRef
from choreoctl.install.runstate import Hooks, Session, default_hooks
from choreoctl.install.waits import wait_objects
from choreoctl.topology.model import Plane, PlaneKind, TLSIssuer

# Workloads whose pods mount what the trust step writes: waited for after trust.
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})


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
        try:
            await register(s.topology, plane, s.clients, s.options.wait_agents, s.options.timeout)
        except BaseException as e:
            # The apply half recorded the step done; say it is not (e.g. the plane's
            # cluster went away), so the record matches what the run reports.
            await s.finish(step_id, "failed", str(e) or type(e).__name__)
            raise
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


__all__ = ["WORKLOAD_KINDS", "Hooks", "Session", "build_steps", "default_hooks"]
