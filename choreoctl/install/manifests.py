"""What the install engine applies: the renderer's objects grouped per plane.

The renderer (:mod:`choreoctl.render`) is the one source of manifests; this module only
regroups its output the way the engine needs it (one set per plane, CRDs with the
control plane) and hashes the topology so the record can tell a changed topology apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from choreoctl.install.objects import Obj, ObjectRef
from choreoctl.topology.model import Plane, PlaneKind, Topology


@dataclass(frozen=True)
class PlaneSet:
    """Every object one plane applies, in its cluster (CRDs ride with the control plane)."""

    plane: Plane
    objects: tuple[Obj, ...]

    @property
    def cluster(self) -> str:
        """The topology cluster the plane lives in."""
        return self.plane.cluster

    def digest(self) -> str:
        """A short hash of the objects: equal digests mean nothing to re-apply changed."""
        text = json.dumps(self.objects, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Rendered:
    """A whole topology rendered for install: one :class:`PlaneSet` per plane, in order."""

    topology: Topology
    planes: tuple[PlaneSet, ...]

    def of(self, plane: Plane) -> PlaneSet:
        """The set of ``plane``."""
        for ps in self.planes:
            if ps.plane.name == plane.name and ps.plane.kind is plane.kind:
                return ps
        raise KeyError(plane.name)

    def refs(self) -> dict[str, list[ObjectRef]]:
        """Every object ref per cluster (for diff and upgrade pruning)."""
        out: dict[str, list[ObjectRef]] = {}
        for ps in self.planes:
            out.setdefault(ps.cluster, []).extend(ObjectRef.of(o) for o in ps.objects)
        return out


def topology_hash(topology: Topology) -> str:
    """A stable hash of the normalised topology (what the record stores)."""
    from choreoctl.topology.loader import topology_to_dict

    text = json.dumps(topology_to_dict(topology), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plane_order(topology: Topology) -> list[Plane]:
    """Planes in the seed's install order: control, observability, data, build."""
    rank = {PlaneKind.control: 0, PlaneKind.observability: 1, PlaneKind.data: 2, PlaneKind.build: 3}
    return sorted(topology.planes, key=lambda p: rank[p.kind])


def from_objects(topology: Topology, per_plane: Mapping[str, Sequence[Obj]]) -> Rendered:
    """A :class:`Rendered` from objects keyed by ``<kind>/<name>`` of each plane (e.g.
    ``data-plane/us``); planes without an entry get an empty set."""
    return Rendered(
        topology,
        tuple(PlaneSet(p, tuple(per_plane.get(_key(p), ()))) for p in plane_order(topology)),
    )


def render_for_install(topology: Topology) -> Rendered:
    """Render ``topology`` with :func:`choreoctl.render.render_topology`, grouped per plane.

    The control plane's set also carries the CRDs and the organization directory (both
    live in the control plane cluster and need nothing from the other planes).
    """
    from choreoctl.render import render_topology
    from choreoctl.render.renderer import CRDS_DIR, ORGANIZATION_DIR

    out = render_topology(topology)
    control = topology.control
    per_plane: dict[str, list[Obj]] = {}
    for plane in topology.planes:
        key = out.plane_dirs[(plane.kind, plane.name)]
        objs = [m.obj for m in out.directories[key]]
        if plane is control:
            crds = out.directories.get((control.cluster, CRDS_DIR), [])
            org = out.directories.get((control.cluster, ORGANIZATION_DIR), [])
            objs = [m.obj for m in crds] + objs + [m.obj for m in org]
        per_plane[_key(plane)] = objs
    return Rendered(
        topology,
        tuple(PlaneSet(p, tuple(per_plane[_key(p)])) for p in plane_order(topology)),
    )


def _key(plane: Plane) -> str:
    return f"{plane.kind.value}/{plane.name}"
