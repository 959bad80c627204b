"""Wall time of ``preflight`` over 4 clusters divided by that over 1 cluster.

The same platform (all four planes) checked on one cluster (topology single-cluster)
and spread over four (multi-cluster): the planes, components and checks are the same,
only the number of clusters differs. Preflight runs every cluster's checks
concurrently, so four clusters should cost little more than one (goal: ratio <= 1.5).

Two ways, each the ratio of medians with both topologies interleaved in one run, so
machine noise hits both alike:

- the command as people run it, ``choreoctl preflight -o json``, a new process each
  time (start-up and imports included);
- in process, ``run_preflight`` alone: with every check, and with the workstation's
  DNS check skipped (``--skip dns``), whose own times are printed too.

Here the API servers share this machine's two cores with choreoctl, so every added
cluster also adds its API server's CPU (about 12 ms a run); with remote clusters only
choreoctl's own CPU per cluster (printed) is added. Runs are ``--gap`` seconds apart
(untimed): this sandbox's resolver drops queries once asked for more than about twenty
in a second, and back-to-back runs would time that limit instead of preflight. Clusters
come from ``tests.testenv`` (started here with cert-manager, so its check takes the
healthy path, and stopped at the end) unless ``--kubeconfig`` names running ones
(contexts alpha, beta, gamma, delta as ``python -m tests.testenv up --clusters 4
--cert-manager`` makes).

    .venv/bin/python bench/preflight.py [--runs 9] [--gap 1.0] [--kubeconfig PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from choreoctl.checks.framework import Report  # noqa: E402
from choreoctl.checks.preflight import run_preflight  # noqa: E402
from choreoctl.topology.loader import load_topology  # noqa: E402
from choreoctl.topology.model import Topology  # noqa: E402

CONTEXTS = ("alpha", "beta", "gamma", "delta")
TOPOLOGIES = {1: "single-cluster", 4: "multi-cluster"}


def topology(n: int) -> Topology:
    """The built-in topology of ``n`` clusters, its clusters on the test contexts."""
    base = load_topology(TOPOLOGIES[n])
    clusters = tuple(
        dataclasses.replace(c, context=CONTEXTS[i]) for i, c in enumerate(base.clusters)
    )
    return dataclasses.replace(base, clusters=clusters)


def command(n: int, kubeconfig: str, tmp: Path) -> list[str]:
    """``choreoctl preflight`` on the test contexts (a values file maps four clusters)."""
    argv = [str(Path(sys.executable).parent / "choreoctl"), "preflight", "-o", "json"]
    argv += ["-t", TOPOLOGIES[n], "--kubeconfig", kubeconfig]
    if n == 1:
        return [*argv, "--context", CONTEXTS[0]]
    values = tmp / "contexts.yaml"
    names = [c.name for c in topology(4).clusters]
    values.write_text(
        "spec:\n  clusters:\n"
        + "".join(
            f"    - {{name: {c}, context: {x}}}\n" for c, x in zip(names, CONTEXTS, strict=True)
        )
    )
    return [*argv, "-f", str(values)]


def unreachable(results: list[tuple[str, str, str]]) -> None:
    """Stop when a cluster did not answer: its checks were not run, so nothing to time."""
    for cluster, check, status in results:
        if check == "api-reachable" and status != "pass":
            sys.exit(f"preflight: cluster {cluster} did not answer; are the clusters up?")


def run_command(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one ``choreoctl preflight`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # finer than os.times' ticks
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        doc = json.loads(out.stdout)
    except ValueError:
        sys.exit(f"preflight printed no report (exit {out.returncode}): {out.stderr[-500:]}")
    unreachable([(r["cluster"], r["id"], r["status"]) for r in doc["results"]])
    return wall, after.ru_utime + after.ru_stime - (before.ru_utime + before.ru_stime)


DNS_MS: list[float] = []


def run_inprocess(topo: Topology, kubeconfig: str, skip: tuple[str, ...]) -> tuple[float, float]:
    """Wall and CPU seconds of one ``run_preflight`` in this process."""
    start, cpu = time.perf_counter(), time.process_time()
    report: Report = asyncio.run(run_preflight(topo, kubeconfig, timeout=20.0, skip=skip))
    wall, used = time.perf_counter() - start, time.process_time() - cpu
    unreachable([(r.cluster, r.check, r.status.value) for r in report.results])
    DNS_MS.extend(r.duration_ms for r in report.results if r.check == "dns" and not skip)
    return wall, used


def measure(title: str, runs: int, gap: float, run: Callable[[int], tuple[float, float]]) -> None:
    """Time ``run(1)`` and ``run(4)`` alternately and print medians and their ratio."""
    wall: dict[int, list[float]] = {1: [], 4: []}
    cpu: dict[int, list[float]] = {1: [], 4: []}
    run(4)  # warm-up: page cache, discovery, the API servers' own caches
    for _ in range(runs):
        for n in (1, 4):
            time.sleep(gap)
            w, c = run(n)
            wall[n].append(w)
            cpu[n].append(c)
    ms = {n: statistics.median(wall[n]) * 1000 for n in (1, 4)}
    cpu_ms = {n: statistics.median(cpu[n]) * 1000 for n in (1, 4)}
    print(f"{title}:")
    for n in (1, 4):
        print(f"  over {n} cluster(s): median {ms[n]:.0f} ms (choreoctl CPU {cpu_ms[n]:.0f} ms)")
    print(f"  choreoctl CPU per added cluster: {(cpu_ms[4] - cpu_ms[1]) / 3:.0f} ms")
    print(f"  ratio 4/1: {ms[4] / ms[1]:.2f} (goal <= 1.5)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--gap", type=float, default=1.0, help="untimed pause before each run")
    parser.add_argument("--kubeconfig", help="running clusters alpha..delta (else start them)")
    args = parser.parse_args()
    runs, gap = max(1, min(args.runs, 50)), max(0.0, min(args.gap, 10.0))
    started = None
    kubeconfig = args.kubeconfig
    if not kubeconfig:
        from tests.testenv import default_specs, start_clusters

        t0 = time.perf_counter()
        started = start_clusters(
            [dataclasses.replace(s, cert_manager=True) for s in default_specs(4)]
        )
        kubeconfig = str(started.kubeconfig)
        print(f"started 4 test clusters in {time.perf_counter() - t0:.1f}s", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            argv = {n: command(n, kubeconfig, Path(tmp)) for n in (1, 4)}
            measure(
                "command (choreoctl preflight -o json)", runs, gap, lambda n: run_command(argv[n])
            )
        topo = {n: topology(n) for n in (1, 4)}
        for skip, title in (((), "in process, every check"), (("dns",), "in process, --skip dns")):

            def once(n: int, skip: tuple[str, ...] = skip) -> tuple[float, float]:
                return run_inprocess(topo[n], kubeconfig, skip)

            measure(title, runs, gap, once)
        slow = sum(1 for d in DNS_MS if d > 200)
        print(
            f"dns check: median {statistics.median(DNS_MS):.0f} ms, over 200 ms in {slow} of "
            f"{len(DNS_MS)} runs"
        )
        print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        if started is not None:
            started.stop()


if __name__ == "__main__":
    main()
