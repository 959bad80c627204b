"""``choreoctl doctor``: the seed's troubleshooting steps, automated on an installed topology.

Agents, planes and environments, trust and workloads, per cluster; :func:`run_doctor`
is the entry for the CLI and for ``doctor --bundle``.
"""

from __future__ import annotations

from choreoctl.checks.doctor import agents, planes, trust, workloads
from choreoctl.checks.framework import Check, Report
from choreoctl.checks.preflight.cluster import API_CHECK
from choreoctl.checks.runner import run_suite
from choreoctl.topology.model import Topology

CLUSTER_CHECKS: tuple[Check, ...] = agents.CHECKS + planes.CHECKS + trust.CHECKS + workloads.CHECKS


async def run_doctor(
    topology: Topology,
    kubeconfig: str | None,
    *,
    timeout: float = 10.0,
    wait: float = 0.0,
) -> Report:
    """Every doctor check on every cluster of ``topology``; ``wait`` retries failures."""
    return await run_suite(
        "doctor",
        topology,
        kubeconfig,
        gate=API_CHECK,
        cluster_checks=CLUSTER_CHECKS,
        timeout=timeout,
        wait=wait,
    )


def all_checks() -> tuple[Check, ...]:
    """Every doctor check, in report order."""
    return (API_CHECK, *CLUSTER_CHECKS)


__all__ = ["CLUSTER_CHECKS", "all_checks", "run_doctor"]
