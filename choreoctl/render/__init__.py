"""Render a topology into per-cluster, per-plane manifest directories and an install plan.

``render_topology`` is pure (Topology → :class:`Rendered`); ``write_rendered`` puts the
result on disk as kustomize directories plus ``plan.yaml``.
"""

from __future__ import annotations

from choreoctl.render.manifests import Manifest
from choreoctl.render.output import WriteSummary, write_rendered
from choreoctl.render.plan import InstallPlan, Step, Wait
from choreoctl.render.renderer import Rendered, render_topology

__all__ = [
    "InstallPlan",
    "Manifest",
    "Rendered",
    "Step",
    "Wait",
    "WriteSummary",
    "render_topology",
    "write_rendered",
]
