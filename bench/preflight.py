"""Wall time of ``preflight`` over 4 clusters divided by that over 1 cluster.

Preflight runs every cluster's checks concurrently, so four clusters should cost
little more than one (goal: ratio <= 1.5). Both topologies run interleaved in one
process against the same real test clusters, so machine noise hits both alike; the
figure is the ratio of the medians. Clusters come from ``tests.testenv`` (started
here and stopped at the end) unless ``--kubeconfig`` names running ones (contexts
alpha, beta, gamma, delta as ``python -m tests.testenv up --clusters 4`` makes).

    .venv/bin/python bench/preflight.py [--runs 7] [--kubeconfig PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from choreoctl.checks.preflight import run_preflight  # noqa: E402
from choreoctl.topology.loader import load_topology  # noqa: E402
from choreoctl.topology.model import Topology  # noqa: E402

CONTEXTS = ("alpha", "beta", "gamma", "delta")


def topology(n: int) -> Topology:
    """The control plane plus ``n - 1`` data planes of multi-region, on ``n`` clusters."""
    base = load_topology("multi-region")
    keep = ["control", "data-us", "data-eu", "data-apac"][:n]
    clusters = tuple(
        dataclasses.replace(base.cluster(name), context=CONTEXTS[i]) for i, name in enumerate(keep)
    )
    planes = tuple(p for p in base.planes if p.cluster in keep)
    envs = tuple(e for e in base.environments if any(p.name == e.data_plane for p in planes))
    return dataclasses.replace(base, clusters=clusters, planes=planes, environments=envs)


CPU: list[float] = []


async def timed(topo: Topology, kubeconfig: str) -> float:
    start, cpu = time.perf_counter(), time.process_time()
    report = await run_preflight(topo, kubeconfig, timeout=20.0)
    elapsed = time.perf_counter() - start
    CPU.append(time.process_time() - cpu)
    broken = [r for r in report.results if r.check == "api-reachable" and r.status != "pass"]
    if broken:
        sys.exit(f"preflight: cluster {broken[0].cluster} unreachable: {broken[0].reason}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--kubeconfig", help="running clusters alpha..delta (else start them)")
    args = parser.parse_args()
    started = None
    kubeconfig = args.kubeconfig
    if not kubeconfig:
        from tests.testenv import default_specs, start_clusters

        t0 = time.perf_counter()
        started = start_clusters(default_specs(4))
        kubeconfig = str(started.kubeconfig)
        print(f"started 4 test clusters in {time.perf_counter() - t0:.1f}s", flush=True)
    try:
        one, four = topology(1), topology(4)
        asyncio.run(timed(four, kubeconfig))  # warm-up: discovery caches, TLS, imports
        t1: list[float] = []
        t4: list[float] = []
        c1: list[float] = []
        c4: list[float] = []
        for _ in range(args.runs):
            t1.append(asyncio.run(timed(one, kubeconfig)))
            c1.append(CPU[-1])
            t4.append(asyncio.run(timed(four, kubeconfig)))
            c4.append(CPU[-1])
        m1, m4 = statistics.median(t1), statistics.median(t4)
        cpu1, cpu4 = statistics.median(c1) * 1000, statistics.median(c4) * 1000
        print(f"preflight over 1 cluster:  median {m1 * 1000:.0f} ms (choreoctl CPU {cpu1:.0f} ms)")
        print(f"preflight over 4 clusters: median {m4 * 1000:.0f} ms (choreoctl CPU {cpu4:.0f} ms)")
        print(f"choreoctl CPU per added cluster: {(cpu4 - cpu1) / 3:.0f} ms")
        print(f"ratio 4/1: {m4 / m1:.2f} (goal <= 1.5)")
        print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        if started is not None:
            started.stop()


if __name__ == "__main__":
    main()
