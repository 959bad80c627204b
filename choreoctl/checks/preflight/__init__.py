"""``choreoctl preflight``: the seed's pre-installation checklist, per cluster and plane.

:data:`CLUSTER_CHECKS` run on every cluster of the topology (after ``api-reachable``),
:data:`LOCAL_CHECKS` once on the workstation. :func:`run_preflight` is what ``install``
calls unless ``--skip-preflight``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from choreoctl.checks.framework import Check, CheckContext, Outcome, Report, skipped
from choreoctl.checks.preflight import (
    certs,
    cluster,
    connectivity,
    local,
    networking,
    permissions,
    storage,
)
from choreoctl.checks.runner import run_suite
from choreoctl.topology.model import Topology

API_CHECK = cluster.API_CHECK
CLUSTER_CHECKS: tuple[Check, ...] = (
    cluster.CHECKS
    + permissions.CHECKS
    + networking.CHECKS
    + storage.CHECKS
    + certs.CHECKS
    + connectivity.CHECKS
)
LOCAL_CHECKS: tuple[Check, ...] = local.LOCAL_CHECKS + connectivity.LOCAL_CHECKS


async def run_preflight(
    topology: Topology,
    kubeconfig: str | None,
    *,
    probe: bool = False,
    timeout: float = 10.0,
    wait: float = 0.0,
    skip: Collection[str] = (),
) -> Report:
    """Every preflight check for ``topology``; the report says pass/warn/fail per check.

    ``probe`` creates short-lived objects (a LoadBalancer Service, a Pod) in scratch
    namespaces and removes them; ``timeout`` bounds each check; ``wait`` retries
    failing checks until they pass or that many seconds have passed; the checks named
    in ``skip`` are reported as skipped without running (validate with :func:`skippable`).
    """
    return await run_suite(
        "preflight",
        topology,
        kubeconfig,
        gate=API_CHECK,
        cluster_checks=_skipping(CLUSTER_CHECKS, skip),
        local_checks=_skipping(LOCAL_CHECKS, skip),
        probe=probe,
        timeout=timeout,
        wait=wait,
    )


def skippable() -> tuple[str, ...]:
    """Check IDs ``--skip`` accepts: every check but the API gate the others need."""
    return tuple(c.id for c in (*CLUSTER_CHECKS, *LOCAL_CHECKS))


def _skipping(checks: tuple[Check, ...], skip: Collection[str]) -> tuple[Check, ...]:
    """``checks`` with those named in ``skip`` answering "skipped" instead of running."""

    async def skip_it(ctx: CheckContext) -> Outcome:
        return skipped("skipped with --skip")

    return tuple(dataclasses.replace(c, run=skip_it) if c.id in skip else c for c in checks)


def all_checks() -> tuple[Check, ...]:
    """Every preflight check, in report order (for docs and ``--list``)."""
    return (API_CHECK, *CLUSTER_CHECKS, *LOCAL_CHECKS)


__all__ = ["CLUSTER_CHECKS", "LOCAL_CHECKS", "all_checks", "run_preflight", "skippable"]
