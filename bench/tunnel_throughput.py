"""Throughput of a large GET through gateway + agent vs straight to the API server.

    .venv/bin/python bench/tunnel_throughput.py [--size-mib 5] [--rounds 20]
    .venv/bin/python bench/tunnel_throughput.py --kubeconfig K --context C --path /api/v1/configmaps

Same processes as ``tunnel_latency.py`` (gateway, agent, this client, on loopback). With
the stand-in API server the body is ``--size-mib`` MiB; with a real one, ``--path`` names
a large read (e.g. a list of big ConfigMaps). Direct and tunnelled reads alternate; the
script prints MiB/s of each and their ratio. Goal: the tunnel ≥ 50 % of direct.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tunnel_latency import (  # noqa: E402
    cpu_seconds,
    direct_client,
    free_port,
    internal_client,
    make_certs,
    spawn,
    spawn_agent,
    spawn_gateway,
    upstream_kubeconfig,
    wait_connected,
)


async def measure(
    d: Path, ports: list[int], kubeconfig: Path, context: str, path: str, rounds: int
) -> dict[str, float]:
    direct, _ = direct_client(kubeconfig, context)
    tunnel_url = f"https://127.0.0.1:{ports[1]}/api/proxy/dataplane/bench-0/bench/bench-0/k8s{path}"
    secs = {"direct": 0.0, "tunnel": 0.0}
    size = {"direct": 0, "tunnel": 0}
    async with internal_client(d) as tunnel, direct:
        for i in range(rounds + 2):
            for name in ("direct", "tunnel") if i % 2 else ("tunnel", "direct"):
                t0 = time.perf_counter()
                r = await (direct.get(path) if name == "direct" else tunnel.get(tunnel_url))
                elapsed = time.perf_counter() - t0
                if r.status_code != 200:
                    raise SystemExit(f"{name}: {r.status_code} {r.text[:200]}")
                if i >= 2:
                    secs[name] += elapsed
                    size[name] += len(r.content)
    return {k: size[k] / secs[k] / 2**20 for k in secs} | {"bytes": size["direct"] / rounds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--kubeconfig")
    ap.add_argument("--context", default="")
    ap.add_argument("--path", default="")
    ap.add_argument("--tls-buffer", type=int, default=16384, help="gateway TLS read buffer")
    args = ap.parse_args()
    rounds = max(2, min(args.rounds, 200))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        make_certs(d)
        procs = []
        try:
            if args.kubeconfig:
                kubeconfig, context, path = Path(args.kubeconfig), args.context, args.path
            else:
                up = free_port()
                procs.append(
                    spawn(
                        str(Path(__file__).parent / "tunnel_latency.py"),
                        "--serve-upstream",
                        str(up),
                        "--certs",
                        str(d),
                    )
                )
                kubeconfig, context = upstream_kubeconfig(d, up), "up"
                path = args.path or f"/big/{int(args.size_mib * 2**20)}"
            ports = [free_port(), free_port(), free_port()]
            procs.append(spawn_gateway(d, ports, tls_buffer=args.tls_buffer))
            procs.append(spawn_agent(d, ports, kubeconfig, context))
            asyncio.run(wait_connected(d, ports))
            gw, ag = procs[-2].pid, procs[-1].pid
            before = cpu_seconds(gw) + cpu_seconds(ag)
            r = asyncio.run(measure(d, ports, kubeconfig, context, path, rounds))
            cpu = cpu_seconds(gw) + cpu_seconds(ag) - before
            r["cpu_ms_per_mib"] = cpu * 1000 / ((rounds + 2) * r["bytes"] / 2**20)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)
    ratio = r["tunnel"] / r["direct"]
    print(f"tunnel throughput, {rounds} GET {path} ({r['bytes'] / 2**20:.1f} MiB) each way")
    print(f"  direct {r['direct']:.1f} MiB/s   tunnel {r['tunnel']:.1f} MiB/s")
    print(
        f"  ratio tunnel/direct {ratio:.0%} (goal >= 50%: {'met' if ratio >= 0.5 else 'NOT met'})"
    )
    print(f"  CPU of gateway + agent per MiB relayed: {r['cpu_ms_per_mib']:.1f} ms")
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
