"""``choreoctl preflight``: the seed's pre-installation checklist, per cluster and plane.

:data:`CLUSTER_CHECKS` run on every cluster of the topology (after ``api-reachable``),
:data:`LOCAL_CHECKS` once on the workstation. :func:`run_preflight` is what ``install``
calls unless ``--skip-preflight``.
"""

from __future__ import annotations

from choreoctl.checks.framework import Check, Report
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
) -> Report:
    """Every preflight check for ``topology``; the report says pass/warn/fail per check.

    ``probe`` creates short-lived objects (a LoadBalancer Service, a Pod) in scratch
    namespaces and removes them; ``timeout`` bounds each check; ``wait`` retries
    failing checks until they pass or that many seconds have passed.
    """
    return await run_suite(
        "preflight",
        topology,
        kubeconfig,
        gate=API_CHECK,
        cluster_checks=CLUSTER_CHECKS,
        local_checks=LOCAL_CHECKS,
        probe=probe,
        timeout=timeout,
        wait=wait,
    )


def all_checks() -> tuple[Check, ...]:
    """Every preflight check, in report order (for docs and ``--list``)."""
    return (API_CHECK, *CLUSTER_CHECKS, *LOCAL_CHECKS)


__all__ = ["CLUSTER_CHECKS", "LOCAL_CHECKS", "all_checks", "run_preflight"]
