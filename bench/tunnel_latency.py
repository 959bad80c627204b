"""Request latency through gateway + agent vs the same request straight to the API server.

    .venv/bin/python bench/tunnel_latency.py [--requests 2000] [--kubeconfig K --context C]

Everything runs on loopback as separate processes: the gateway (``Gateway`` with the
plane CRs held in memory), the agent (``choreoctl agent run``) and this client. The API
server is the one of ``--kubeconfig/--context`` (e.g. a cluster of
``python -m tests.testenv up``), else a small aiohttp stand-in started here. Direct and
tunnelled requests alternate, over keep-alive connections, so both see the same machine
load; the script prints p50/p99 of each and the overhead. Goal: p50 overhead ≤ 2 ms.

The other runtime benchmarks import the process helpers from this file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from choreoctl import pki  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certs(d: Path) -> None:
    """Gateway CA + serving cert + controller client cert; agent CA + agent cert."""
    gw_ca = pki.make_ca("cluster-gateway-ca")
    (d / "gw").mkdir(parents=True, exist_ok=True)
    (d / "agent").mkdir(exist_ok=True)
    pki.issue_cert(
        gw_ca, "gw", server=True, dns_names=["localhost"], ip_addresses=["127.0.0.1"]
    ).write(d / "gw/tls.crt", d / "gw/tls.key")
    (d / "gw/ca.crt").write_bytes(gw_ca.cert_pem)
    pki.issue_cert(gw_ca, "ctl", client=True).write(d / "gw/ctl.crt", d / "gw/ctl.key")
    agent_ca = pki.make_ca("agent-ca")
    (d / "agent/ca.crt").write_bytes(agent_ca.cert_pem)
    pki.issue_cert(agent_ca, "bench", client=True).write(d / "agent/tls.crt", d / "agent/tls.key")
    # The stand-in API server serves HTTPS like a real one, so the direct baseline pays
    # for TLS as the tunnel's client leg does.
    up_ca = pki.make_ca("upstream-ca")
    (d / "up").mkdir(exist_ok=True)
    (d / "up/ca.crt").write_bytes(up_ca.cert_pem)
    pki.issue_cert(up_ca, "upstream", server=True, ip_addresses=["127.0.0.1"]).write(
        d / "up/tls.crt", d / "up/tls.key"
    )


def serve_gateway(d: Path, ports: list[int], planes: int, tls_buffer: int) -> None:
    """(subprocess) A gateway whose CRs bench-0 … bench-N-1 trust the agent CA."""
    from choreoctl.runtime import jsonlog
    from choreoctl.runtime.gateway import server
    from choreoctl.runtime.gateway.auth import PlaneCR, PlaneSource

    jsonlog.setup("warning")
    server.TLS_READ_BUFFER = tls_buffer
    ca = pki.load_certs((d / "agent/ca.crt").read_bytes())
    source = PlaneSource()
    for i in range(planes):
        source.put(PlaneCR("dataplane", "bench", f"bench-{i}", f"bench-{i}", ca))
    cfg = server.GatewayConfig(
        tls_cert=str(d / "gw/tls.crt"),
        tls_key=str(d / "gw/tls.key"),
        client_ca=str(d / "gw/ca.crt"),
        host="127.0.0.1",
        port=ports[0],
        internal_port=ports[1],
        health_port=ports[2],
        drain_timeout=2.0,
    )
    asyncio.run(server.serve(cfg, source))


def serve_upstream(port: int, d: Path) -> None:
    """(subprocess) A stand-in API server on HTTPS: a small JSON object and large bodies."""
    from aiohttp import web

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(str(d / "up/tls.crt"), str(d / "up/tls.key"))

    small = json.dumps(
        {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {"name": "default", "labels": {f"k{i}": "v" * 20 for i in range(20)}},
        }
    ).encode()

    async def get_small(_: web.Request) -> web.Response:
        return web.Response(body=small, content_type="application/json")

    async def get_big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.match_info["n"]))

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/default", get_small)
    app.router.add_get("/big/{n}", get_big)
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=tls, print=None, access_log=None)


def spawn(
    *args: str, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=out, stderr=out, env={**os.environ, **(env or {})}
    )


def spawn_gateway(
    d: Path, ports: list[int], planes: int = 1, tls_buffer: int = 16384
) -> subprocess.Popen[bytes]:
    return spawn(
        __file__,
        "--serve-gateway",
        str(d),
        "--ports",
        ",".join(map(str, ports)),
        "--planes",
        str(planes),
        "--tls-buffer",
        str(tls_buffer),
        log=d / "gateway.log",
    )


def upstream_kubeconfig(d: Path, port: int) -> Path:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "up",
        "clusters": [
            {
                "name": "up",
                "cluster": {
                    "server": f"https://127.0.0.1:{port}",
                    "certificate-authority": str(d / "up/ca.crt"),
                },
            }
        ],
        "users": [{"name": "up", "user": {"token": "bench"}}],
        "contexts": [{"name": "up", "context": {"cluster": "up", "user": "up"}}],
    }
    path = d / "upstream.kubeconfig"
    path.write_text(json.dumps(cfg))
    return path


def spawn_agent(
    d: Path, ports: list[int], kubeconfig: Path, context: str, plane_id: str = "bench-0"
) -> subprocess.Popen[bytes]:
    return spawn(
        "-m",
        "choreoctl",
        "agent",
        "run",
        "--server-url",
        f"wss://localhost:{ports[0]}/ws",
        "--plane-type",
        "dataplane",
        "--plane-id",
        plane_id,
        "--client-cert",
        str(d / "agent/tls.crt"),
        "--client-key",
        str(d / "agent/tls.key"),
        "--server-ca",
        str(d / "gw/ca.crt"),
        "--health-port",
        "0",
        "--log-level",
        "warning",
        "--kubeconfig",
        str(kubeconfig),
        "--context",
        context,
        log=d / "agent.log",
    )


def internal_client(d: Path) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(d / "gw/ca.crt"))
    ctx.load_cert_chain(str(d / "gw/ctl.crt"), str(d / "gw/ctl.key"))
    return httpx.AsyncClient(verify=ctx, timeout=60)


async def wait_connected(
    d: Path, ports: list[int], plane_id: str = "bench-0", timeout: float = 60
) -> None:
    end = time.monotonic() + timeout
    async with internal_client(d) as c:
        while time.monotonic() < end:
            try:
                r = await c.get(
                    f"https://127.0.0.1:{ports[1]}/api/v1/planes/dataplane/{plane_id}/status"
                )
                if r.json().get("connected"):
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    # the temporary directory goes with this process: show the logs' ends now
    tails = []
    for log in sorted(d.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-5:]
        tails.append(f"--- {log.name}\n" + "\n".join(lines))
    raise SystemExit(f"agent {plane_id} did not connect within {timeout}s\n" + "\n".join(tails))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far: the cost that machine load cannot inflate.

    From the scheduler's nanosecond account where the kernel keeps one (clock ticks are
    10 ms: too coarse for a few hundred requests), else from the tick counts."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def direct_client(kubeconfig: Path, context: str) -> tuple[httpx.AsyncClient, str]:
    from choreoctl.kube.config import endpoint_from_kubeconfig

    ep = endpoint_from_kubeconfig(str(kubeconfig), context)
    verify: ssl.SSLContext | bool = False
    if ep.server.startswith("https") and ep.verify:
        verify = ssl.create_default_context(cafile=ep.ca_file)
    if ep.client_cert and isinstance(verify, ssl.SSLContext):
        verify.load_cert_chain(*ep.client_cert)
    # identity, as the agent asks for: a gzipped direct read would measure the API
    # server's compressor (~40 MiB/s on a 5 MiB list), not the transport
    headers = {"Accept-Encoding": "identity"}
    if ep.token:
        headers["Authorization"] = f"Bearer {ep.token}"
    return httpx.AsyncClient(
        base_url=ep.server, verify=verify, headers=headers, timeout=60
    ), ep.server


async def measure(
    d: Path, ports: list[int], kubeconfig: Path, context: str, path: str, n: int
) -> dict[str, float]:
    direct, _ = direct_client(kubeconfig, context)
    tunnel_url = f"https://127.0.0.1:{ports[1]}/api/proxy/dataplane/bench-0/bench/bench-0/k8s{path}"
    times: dict[str, list[float]] = {"direct": [], "tunnel": []}
    async with internal_client(d) as tunnel, direct:
        for i in range(n + 100):
            for name in ("direct", "tunnel") if i % 2 else ("tunnel", "direct"):
                t0 = time.perf_counter()
                r = await (direct.get(path) if name == "direct" else tunnel.get(tunnel_url))
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    raise SystemExit(f"{name} request failed: {r.status_code} {r.text[:200]}")
                if i >= 100:  # warm-up excluded
                    times[name].append(dt * 1000)
    out = {}
    for name, vals in times.items():
        out[f"{name}_p50_ms"] = pct(vals, 0.5)
        out[f"{name}_p99_ms"] = pct(vals, 0.99)
        out[f"{name}_mean_ms"] = statistics.fmean(vals)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--kubeconfig")
    ap.add_argument("--context", default="")
    ap.add_argument("--path", default="/api/v1/namespaces/default")
    ap.add_argument("--serve-gateway")
    ap.add_argument("--serve-upstream", type=int)
    ap.add_argument("--certs", help="(with --serve-upstream) the directory make_certs wrote")
    ap.add_argument("--ports")
    ap.add_argument("--planes", type=int, default=1)
    ap.add_argument("--tls-buffer", type=int, default=16384)
    args = ap.parse_args()
    if args.serve_gateway:
        serve_gateway(
            Path(args.serve_gateway),
            [int(p) for p in args.ports.split(",")],
            args.planes,
            args.tls_buffer,
        )
        return
    if args.serve_upstream:
        serve_upstream(args.serve_upstream, Path(args.certs))
        return
    n = max(10, min(args.requests, 20000))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        make_certs(d)
        procs = []
        try:
            kubeconfig, context = (
                (Path(args.kubeconfig), args.context) if args.kubeconfig else (None, "up")
            )
            if kubeconfig is None:
                up = free_port()
                procs.append(spawn(__file__, "--serve-upstream", str(up), "--certs", str(d)))
                kubeconfig = upstream_kubeconfig(d, up)
            ports = [free_port(), free_port(), free_port()]
            procs.append(spawn_gateway(d, ports))
            procs.append(spawn_agent(d, ports, kubeconfig, context))
            asyncio.run(wait_connected(d, ports))
            gw, ag = procs[-2].pid, procs[-1].pid
            before = cpu_seconds(gw), cpu_seconds(ag)
            r = asyncio.run(measure(d, ports, kubeconfig, context, args.path, n))
            r["gw_cpu_ms"] = (cpu_seconds(gw) - before[0]) * 1000 / (n + 100)
            r["agent_cpu_ms"] = (cpu_seconds(ag) - before[1]) * 1000 / (n + 100)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)
    upstream = f"{args.kubeconfig} ({args.context})" if args.kubeconfig else "aiohttp stand-in"
    print(f"tunnel latency, {n} GET {args.path} each way, upstream: {upstream}")
    print(f"  direct  p50 {r['direct_p50_ms']:.2f} ms  p99 {r['direct_p99_ms']:.2f} ms")
    print(f"  tunnel  p50 {r['tunnel_p50_ms']:.2f} ms  p99 {r['tunnel_p99_ms']:.2f} ms")
    p50 = r["tunnel_p50_ms"] - r["direct_p50_ms"]
    p99 = r["tunnel_p99_ms"] - r["direct_p99_ms"]
    goal = "met" if p50 <= 2 else "NOT met"
    print(f"  overhead p50 {p50:+.2f} ms (goal <= 2 ms: {goal})  p99 {p99:+.2f} ms")
    ratio50 = r["tunnel_p50_ms"] / r["direct_p50_ms"]
    ratio99 = r["tunnel_p99_ms"] / r["direct_p99_ms"]
    print(f"  ratio tunnel/direct p50 {ratio50:.2f}x  p99 {ratio99:.2f}x")
    gw_ms, ag_ms = r["gw_cpu_ms"], r["agent_cpu_ms"]
    print(f"  CPU per tunnelled request: gateway {gw_ms:.2f} ms, agent {ag_ms:.2f} ms")
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
