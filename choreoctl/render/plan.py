"""The ordered install plan: which directory goes to which cluster, in what order, and
what to wait for before the next step.

The order is fixed by the platform: control (CRDs, control plane, organization) → trust
(the gateway CA copied to every plane namespace) → observability → data (all data planes
in one parallel group: regions do not depend on each other) → build. Steps that share a
``group`` may run at the same time; groups run in ascending order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from choreoctl.render.manifests import Manifest
from choreoctl.topology.model import Plane, PlaneKind, Topology

PLAN_API_VERSION = "choreoctl.dev/v1alpha1"
PLAN_KIND = "InstallPlan"
PHASES: tuple[str, ...] = ("control", "trust", "observability", "data", "build")

# What "ready" means per kind: the condition the install engine waits for.
_WAIT_CONDITIONS: dict[str, str] = {
    "CustomResourceDefinition": "Established",
    "Deployment": "Available",
    "StatefulSet": "Ready",  # status.readyReplicas == spec.replicas
    "Certificate": "Ready",
}


@dataclass(frozen=True)
class Wait:
    """One object to wait for, and the condition that means it is ready."""

    kind: str
    name: str
    namespace: str
    condition: str

    def to_dict(self) -> dict[str, str]:
        data = {"kind": self.kind, "name": self.name}
        if self.namespace:
            data["namespace"] = self.namespace
        data["condition"] = self.condition
        return data


@dataclass(frozen=True)
class Step:
    """One step of the install.

    ``action`` is ``apply`` (apply ``directory`` to ``cluster``) or
    ``distribute-gateway-ca`` (read Secret ``cluster-gateway-ca`` in ``namespace`` of
    ``cluster`` and write its ca.crt as ConfigMap ``cluster-gateway-ca`` to each target).
    ``register`` says which plane object to create in the control cluster afterwards.
    """

    name: str
    phase: str
    group: int
    action: str
    cluster: str
    context: str
    namespace: str
    directory: str = ""
    plane: str = ""
    wait: tuple[Wait, ...] = ()
    targets: tuple[dict[str, str], ...] = ()
    register: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "phase": self.phase,
            "group": self.group,
            "action": self.action,
            "cluster": self.cluster,
            "context": self.context,
            "namespace": self.namespace,
        }
        if self.directory:
            data["directory"] = self.directory
        if self.plane:
            data["plane"] = self.plane
        if self.wait:
            data["wait"] = [w.to_dict() for w in self.wait]
        if self.targets:
            data["targets"] = [dict(t) for t in self.targets]
        if self.register:
            data["register"] = self.register
        return data


@dataclass(frozen=True)
class InstallPlan:
    """Every step of an install, in order."""

    topology: str
    steps: tuple[Step, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "apiVersion": PLAN_API_VERSION,
            "kind": PLAN_KIND,
            "topology": self.topology,
            "phases": list(PHASES),
            "steps": [s.to_dict() for s in self.steps],
        }


def waits_for(manifests: list[Manifest]) -> tuple[Wait, ...]:
    """The readiness waits of a directory: every object of a kind in the wait table."""
    return tuple(
        Wait(m.kind, m.name, m.namespace, _WAIT_CONDITIONS[m.kind])
        for m in manifests
        if m.kind in _WAIT_CONDITIONS
    )


def _registration(topology: Topology, plane: Plane) -> dict[str, Any]:
    """The plane object registration writes (choreoctl.planes.crs), minus the clientCA it
    copies from the plane cluster once the agent certificate exists."""
    from choreoctl.planes.crs import plane_cr

    cr = plane_cr(topology, plane, client_ca="")
    return {
        "kind": cr["kind"],
        "name": cr["metadata"]["name"],
        "namespace": cr["metadata"]["namespace"],
        "spec": {k: v for k, v in cr["spec"].items() if k != "clusterAgent"},
        "clientCAFrom": {
            "cluster": plane.cluster,
            "namespace": plane.namespace,
            "secret": "cluster-agent-tls",
            "key": "ca.crt",
        },
    }


def build_plan(
    topology: Topology,
    directories: dict[tuple[str, str], list[Manifest]],
    plane_dirs: dict[tuple[PlaneKind, str], tuple[str, str]],
) -> InstallPlan:
    """The plan for ``topology``.

    ``directories`` maps (cluster, directory) to its manifests; ``plane_dirs`` maps each
    plane (kind, name) to its (cluster, directory).
    """
    control = topology.control
    ctx = {c.name: c.context for c in topology.clusters}
    steps: list[Step] = []

    def apply_step(
        name: str,
        phase: str,
        group: int,
        key: tuple[str, str],
        ns: str,
        plane: str = "",
        register: dict[str, Any] | None = None,
    ) -> Step:
        return Step(
            name=name,
            phase=phase,
            group=group,
            action="apply",
            cluster=key[0],
            context=ctx[key[0]],
            namespace=ns,
            directory=f"{key[0]}/{key[1]}",
            plane=plane,
            wait=waits_for(directories[key]),
            register=register or {},
        )

    steps.append(apply_step("crds", "control", 1, (control.cluster, "crds"), ""))
    control_key = plane_dirs[(PlaneKind.control, control.name)]
    steps.append(
        apply_step("control-plane", "control", 2, control_key, control.namespace, control.name)
    )
    org_key = (control.cluster, "organization")
    steps.append(apply_step("organization", "control", 3, org_key, topology.organization))
    others = [p for p in topology.planes if p.kind is not PlaneKind.control]
    steps.append(
        Step(
            name="trust",
            phase="trust",
            group=4,
            action="distribute-gateway-ca",
            cluster=control.cluster,
            context=ctx[control.cluster],
            namespace=control.namespace,
            targets=tuple(
                {"cluster": p.cluster, "context": ctx[p.cluster], "namespace": p.namespace}
                for p in others
            ),
        )
    )
    group = 5
    for kind in (PlaneKind.observability, PlaneKind.data, PlaneKind.build):
        planes = topology.planes_of(kind)
        for plane in planes:
            key = plane_dirs[(kind, plane.name)]
            name = f"{kind.value}/{plane.name}"
            steps.append(
                apply_step(
                    name,
                    kind.value.removesuffix("-plane"),
                    group,
                    key,
                    plane.namespace,
                    plane.name,
                    _registration(topology, plane),
                )
            )
        if planes:
            group += 1
    return InstallPlan(topology.name, tuple(steps))
