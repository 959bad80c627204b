"""Wall time of ``preflight`` over 4 clusters divided by that over 1 cluster.

Preflight runs every cluster's checks concurrently, so four clusters should cost
little more than one (goal: ratio <= 1.5). The ratio is printed twice: with every
check, and with the workstation's DNS check skipped (``--skip dns``). That check asks
this machine's resolver about the topology's domains (more of them with more planes),
and a resolver that loses queries (this sandbox's does) costs a run a quarter of a
second or more whatever the clusters do; the DNS check's own times are printed too.
Both topologies run interleaved in one process against the same real test clusters,
so machine noise hits both alike; the figure is the ratio of the medians. Clusters
come from ``tests.testenv`` (started here and stopped at the end) unless
``--kubeconfig`` names running ones (contexts alpha, beta, gamma, delta as
``python -m tests.testenv up --clusters 4`` makes).

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
DNS_MS: list[float] = []


async def timed(topo: Topology, kubeconfig: str, skip: tuple[str, ...] = ()) -> float:
    start, cpu = time.perf_counter(), time.process_time()
    report = await run_preflight(topo, kubeconfig, timeout=20.0, skip=skip)
    elapsed = time.perf_counter() - start
    CPU.append(time.process_time() - cpu)
    broken = [r for r in report.results if r.check == "api-reachable" and r.status != "pass"]
    if broken:
        sys.exit(f"preflight: cluster {broken[0].cluster} unreachable: {broken[0].reason}")
    DNS_MS.extend(r.duration_ms for r in report.results if r.check == "dns" and not skip)
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
        # (clusters, skip) -> wall times and CPU times; every variant once per round
        variants = [(1, ()), (4, ()), (1, ("dns",)), (4, ("dns",))]
        wall: dict[tuple[int, tuple[str, ...]], list[float]] = {v: [] for v in variants}
        cpu: dict[tuple[int, tuple[str, ...]], list[float]] = {v: [] for v in variants}
        for _ in range(max(1, min(args.runs, 50))):
            for n, skip in variants:
                wall[(n, skip)].append(
                    asyncio.run(timed(one if n == 1 else four, kubeconfig, skip))
                )
                cpu[(n, skip)].append(CPU[-1])
        for skip, title in (((), "every check"), (("dns",), "every check but dns (--skip dns)")):
            m1, m4 = (statistics.median(wall[(n, skip)]) for n in (1, 4))
            c1, c4 = (statistics.median(cpu[(n, skip)]) * 1000 for n in (1, 4))
            print(f"{title}:")
            for n, m, c in ((1, m1, c1), (4, m4, c4)):
                print(f"  over {n} cluster(s): median {m * 1000:.0f} ms (choreoctl CPU {c:.0f} ms)")
            print(f"  choreoctl CPU per added cluster: {(c4 - c1) / 3:.0f} ms")
            print(f"  ratio 4/1: {m4 / m1:.2f} (goal <= 1.5)")
        slow = sum(1 for d in DNS_MS if d > 200)
        print(
            f"dns check: median {statistics.median(DNS_MS):.0f} ms, over 200 ms in {slow} of "
            f"{len(DNS_MS)} runs (this machine's resolver answers in ms or loses the query)"
        )
        print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        if started is not None:
            started.stop()


if __name__ == "__main__":
    main()
