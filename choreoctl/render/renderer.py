"""Topology → manifests and install plan, as one pure function.

The same topology always gives the same objects in the same order with the same text, so
rendered directories can be diffed and committed (GitOps) and the output is
byte-identical run to run. Nothing here touches a cluster or the output directory.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from choreoctl.errors import Problem, RenderError
from choreoctl.render.charts import chart_templates, crd_files, render_template
from choreoctl.render.manifests import Manifest, order, split_documents
from choreoctl.render.plan import InstallPlan, build_plan
from choreoctl.render.values import PART_OF, all_plane_values
from choreoctl.topology.model import PlaneKind, Topology

CRDS_DIR = "crds"
ORGANIZATION_DIR = "organization"


@dataclass(frozen=True)
class Rendered:
    """Everything a topology renders to.

    ``directories`` maps ``(cluster, directory)`` to that directory's objects in apply
    order; ``plane_dirs`` says which directory holds each plane ``(kind, name)``.
    """

    topology: str
    directories: dict[tuple[str, str], list[Manifest]]
    plane_dirs: dict[tuple[PlaneKind, str], tuple[str, str]]
    plan: InstallPlan

    def by_cluster(self) -> dict[str, dict[str, list[Manifest]]]:
        """``{cluster: {directory: [manifests]}}``, clusters and directories sorted."""
        out: dict[str, dict[str, list[Manifest]]] = {}
        for (cluster, directory), manifests in sorted(self.directories.items()):
            out.setdefault(cluster, {})[directory] = manifests
        return out

    def manifests(self) -> list[Manifest]:
        """Every object of every directory, in directory then apply order."""
        return [m for _, ms in sorted(self.directories.items()) for m in ms]


def plane_directory(topology: Topology, kind: PlaneKind, name: str, cluster: str) -> str:
    """The plane's directory name in its cluster: the chart name, plus the plane name
    when the cluster holds more than one plane of that kind."""
    same = Counter((p.cluster, p.kind) for p in topology.planes)
    return kind.value if same[(cluster, kind)] == 1 else f"{kind.value}-{name}"


def _render_chart(chart: str, values: dict[str, Any]) -> list[Manifest]:
    found: list[Manifest] = []
    for template in chart_templates(chart):
        found.extend(split_documents(render_template(template, values), template))
    return found


def _organization_values(topology: Topology) -> dict[str, Any]:
    return {
        "organization": topology.organization,
        "labels": dict(PART_OF),
        "environments": [
            {
                "name": e.name,
                "data_plane": e.data_plane,
                "dns_prefix": e.dns_prefix,
                "is_production": e.is_production,
            }
            for e in topology.environments
        ],
    }


def _check_placement(topology: Topology) -> None:
    """Two planes in one namespace of one cluster would render the same objects twice."""
    seen: dict[tuple[str, str], str] = {}
    problems: list[Problem] = []
    for p in topology.planes:
        where = (p.cluster, p.namespace)
        label = f"{p.kind.value} {p.name}"
        if where in seen:
            problems.append(
                Problem(
                    f"{label} and {seen[where]} share namespace {p.namespace!r}",
                    path=f"planes.{p.name}.namespace",
                    expected="one namespace per plane within a cluster",
                )
            )
        else:
            seen[where] = label
    if problems:
        raise RenderError(
            "planes would overwrite each other's objects",
            hint="give each plane in the same cluster its own namespace",
            problems=problems,
        )


def render_topology(topology: Topology) -> Rendered:
    """Render every chart of ``topology`` and the install plan. Raises RenderError."""
    _check_placement(topology)
    control_cluster = topology.control.cluster
    directories: dict[tuple[str, str], list[Manifest]] = {}
    crds = [m for name, text in crd_files() for m in split_documents(text, f"crds/{name}")]
    directories[(control_cluster, CRDS_DIR)] = order(crds, f"{control_cluster}/{CRDS_DIR}")
    plane_dirs: dict[tuple[PlaneKind, str], tuple[str, str]] = {}
    for plane, values in all_plane_values(topology):
        key = (plane.cluster, plane_directory(topology, plane.kind, plane.name, plane.cluster))
        plane_dirs[(plane.kind, plane.name)] = key
        manifests = _render_chart(plane.kind.value, values)
        directories[key] = order(manifests, "/".join(key))
    org_key = (control_cluster, ORGANIZATION_DIR)
    org = _render_chart(ORGANIZATION_DIR, _organization_values(topology))
    directories[org_key] = order(org, "/".join(org_key))
    plan = build_plan(topology, directories, plane_dirs)
    return Rendered(topology.name, directories, plane_dirs, plan)
