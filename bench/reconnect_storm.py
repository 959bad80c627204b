"""Reconnect storm: N agents come back after a gateway restart; time until all are authorized.

    .venv/bin/python bench/reconnect_storm.py --agents 1000

The agents are real :class:`choreoctl.runtime.agent.Agent` objects (backoff, full
jitter, TLS identity, the 1012 "restarting" close code) in one process; the gateway is
another. Two restarts are timed: a graceful one (SIGTERM: drain, close with 1012, a new
gateway on the same ports) and a crash (SIGKILL, then a new gateway). The clock runs
from the moment the new gateway process is started to the moment its status API counts
all N agents connected and authorized; the baseline is the time the first connection of
all N took (from the same agents, same process). Goal: 1,000 agents in ≤ 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tunnel_latency import free_port, internal_client, make_certs, spawn_gateway  # noqa: E402


async def run_agents(d: Path, port: int, n: int) -> None:
    """(subprocess) ``n`` real agents of plane bench-0, until stdin closes."""
    from choreoctl.kube.client import KubeClient
    from choreoctl.runtime import jsonlog
    from choreoctl.runtime.agent import Agent, AgentConfig
    from choreoctl.runtime.agent_exec import Executor

    jsonlog.setup("critical")
    kube = KubeClient("http://127.0.0.1:9", token="unused")
    stop = asyncio.Event()
    cfg = AgentConfig(
        server_url=f"wss://localhost:{port}/ws",
        plane_type="dataplane",
        plane_id="bench-0",
        client_cert=str(d / "agent/tls.crt"),
        client_key=str(d / "agent/tls.key"),
        server_ca=str(d / "gw/ca.crt"),
        health_port=0,
        handshake_timeout=30,
        # a connection that lasted this long counts as healthy, so a crash after it gets
        # the short "gateway restarting" backoff, as after 60 s in production (without
        # it the storm measured the 30 s backoff cap, not the gateway)
        healthy_after=HEALTHY_AFTER,
    )
    tasks = [asyncio.create_task(Agent(cfg, Executor(kube)).run(stop)) for _ in range(n)]
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await kube.aclose()


HEALTHY_AFTER = 5.0  # the agents' "healthy connection" period (60 s in production)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (load-independent cost)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def count(d: Path, ports: list[int]) -> int:
    try:
        async with internal_client(d) as c:
            r = await c.get(
                f"https://127.0.0.1:{ports[1]}/api/v1/planes/dataplane/bench-0/status", timeout=5
            )
            return int(r.json()["connectedAgents"])
    except Exception:  # the gateway is not up yet
        return -1


async def until_all(d: Path, ports: list[int], n: int, limit: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if await count(d, ports) >= n:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise SystemExit(f"only {await count(d, ports)} of {n} agents within {limit:.0f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--limit", type=float, default=120.0, help="give up after this many seconds")
    ap.add_argument("--run-agents", type=int)
    ap.add_argument("--dir")
    ap.add_argument("--port", type=int)
    args = ap.parse_args()
    if args.run_agents:
        asyncio.run(run_agents(Path(args.dir), args.port, args.run_agents))
        return
    n = max(1, min(args.agents, 5000))
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        make_certs(d)
        ports = [free_port(), free_port(), free_port()]
        gateway = spawn_gateway(d, ports)
        agents = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--run-agents",
                str(n),
                "--dir",
                str(d),
                "--port",
                str(ports[0]),
            ],
            stdin=subprocess.PIPE,
        )
        cpu: dict[str, tuple[float, float]] = {}
        try:
            a0 = cpu_seconds(agents.pid)
            results["first connect (baseline)"] = asyncio.run(until_all(d, ports, n, args.limit))
            cpu["first connect (baseline)"] = (
                cpu_seconds(gateway.pid),
                cpu_seconds(agents.pid) - a0,
            )
            for name, sig in (
                ("graceful restart (SIGTERM, 1012)", signal.SIGTERM),
                ("crash (SIGKILL)", signal.SIGKILL),
            ):
                time.sleep(HEALTHY_AFTER + 1)
                gateway.send_signal(sig)
                gateway.wait(60)
                a0 = cpu_seconds(agents.pid)
                gateway = spawn_gateway(d, ports)
                results[name] = asyncio.run(until_all(d, ports, n, args.limit))
                cpu[name] = (cpu_seconds(gateway.pid), cpu_seconds(agents.pid) - a0)
        finally:
            assert agents.stdin is not None
            agents.stdin.close()
            agents.wait(60)
            gateway.terminate()
            gateway.wait(30)
    base = results["first connect (baseline)"]
    print(f"reconnect storm: {n} agents (real Agent objects, one process), gateway in another")
    for name, secs in results.items():
        goal = (
            ""
            if name.startswith("first")
            else f"  (goal <= 30 s for 1,000: {'met' if secs <= 30 else 'NOT met'})"
        )
        print(f"  {name:34} {secs:6.1f} s  ratio to baseline {secs / base:.2f}x{goal}")
        gw_cpu, ag_cpu = cpu[name]
        print(f"  {'':34} CPU: gateway {gw_cpu:.1f} s (incl. start-up), agents {ag_cpu:.1f} s")
    print(f"  load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
