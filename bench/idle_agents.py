"""Idle agents one gateway process holds: memory per agent and where it stops accepting.

    .venv/bin/python bench/idle_agents.py --agents 10000
    .venv/bin/python bench/idle_agents.py --agents 2000 --server websockets   # library comparison

The server runs in its own process; the simulated agents (each its own TLS connection
with a client certificate, answering pings) run in another, since one process may hold
at most 20,000 open files. ``--server gateway`` is the real gateway (every agent is an
authorized replica of one plane CR); ``aiohttp`` and ``websockets`` are bare TLS
WebSocket echo servers on each library, the measurement behind the library choice
(memory per idle connection and echo round trip on one connection). Baseline: the same
server's RSS before the agents connect. Goal: 10,000 agents in ≤ 2 GiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tunnel_latency import free_port, make_certs, spawn, spawn_gateway  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def server_context(d: Path, tls_buffer: int) -> ssl.SSLContext:
    import asyncio.sslproto

    asyncio.sslproto.SSLProtocol.max_size = tls_buffer  # same tuning as the gateway's
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(d / "gw/tls.crt"), str(d / "gw/tls.key"))
    ctx.load_verify_locations(str(d / "agent/ca.crt"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def serve_echo(kind: str, d: Path, port: int, tls_buffer: int) -> None:
    """(subprocess) A bare TLS WebSocket echo server on aiohttp or websockets."""
    ctx = server_context(d, tls_buffer)
    if kind == "websockets":
        from websockets.asyncio.server import ServerConnection, serve

        async def echo(ws: ServerConnection) -> None:
            async for msg in ws:
                await ws.send(msg)

        async def main() -> None:
            async with serve(echo, "127.0.0.1", port, ssl=ctx, compression=None, max_queue=4):
                await asyncio.Event().wait()

        asyncio.run(main())
        return
    from aiohttp import web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    web.run_app(
        app, host="127.0.0.1", port=port, ssl_context=ctx, print=None, access_log=None, backlog=4096
    )


async def agents(url: str, d: Path, n: int, batch: int, echo: int) -> None:
    """(subprocess) Open ``n`` agent connections, report, echo-test one, hold until stdin closes."""
    import aiohttp

    ctx = ssl.create_default_context(cafile=str(d / "gw/ca.crt"))
    ctx.load_cert_chain(str(d / "agent/tls.crt"), str(d / "agent/tls.key"))
    conn = aiohttp.TCPConnector(limit=0, ssl=ctx)
    session = aiohttp.ClientSession(connector=conn)
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    failures: list[str] = []

    async def one() -> None:
        try:
            async with asyncio.timeout(30):
                sockets.append(await session.ws_connect(url, autoping=True, heartbeat=None))
        except Exception as e:  # report every kind of refusal, keep going
            failures.append(type(e).__name__ + ": " + str(e)[:100])

    started = time.monotonic()
    for i in range(0, n, batch):
        await asyncio.gather(*(one() for _ in range(min(batch, n - i))))
        if failures and len(failures) > n // 20:
            break
    took = time.monotonic() - started
    rtts = []
    if echo and sockets:
        ws = sockets[0]
        for _ in range(echo):
            t0 = time.perf_counter()
            await ws.send_str("x" * 64)
            await ws.receive()
            rtts.append((time.perf_counter() - t0) * 1000)
    report = {
        "connected": len(sockets),
        "failures": len(failures),
        "first_failure": failures[:1],
        "seconds": took,
    }
    if rtts:
        report["echo_p50_ms"] = statistics.median(rtts)
    print(json.dumps(report), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await session.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--server", choices=["gateway", "aiohttp", "websockets"], default="gateway")
    ap.add_argument("--tls-buffer", type=int, default=16384, help="asyncio TLS read buffer (bytes)")
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--serve-echo")
    ap.add_argument("--run-agents")
    ap.add_argument("--dir")
    ap.add_argument("--port", type=int)
    ap.add_argument("--echo", type=int, default=0)
    args = ap.parse_args()
    if args.serve_echo:
        serve_echo(args.serve_echo, Path(args.dir), args.port, args.tls_buffer)
        return
    if args.run_agents:
        asyncio.run(agents(args.run_agents, Path(args.dir), args.agents, args.batch, args.echo))
        return
    import subprocess

    n = max(1, min(args.agents, 15000))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        make_certs(d)
        port = free_port()
        if args.server == "gateway":
            ports = [port, free_port(), free_port()]
            server = spawn_gateway(d, ports, tls_buffer=args.tls_buffer)
            url = f"wss://localhost:{port}/ws?planeType=dataplane&planeID=bench-0"
        else:
            server = spawn(
                __file__,
                "--serve-echo",
                args.server,
                "--dir",
                str(d),
                "--port",
                str(port),
                "--tls-buffer",
                str(args.tls_buffer),
            )
            url = f"wss://localhost:{port}/ws"
        try:
            time.sleep(2.5)
            base = rss_mib(server.pid)
            client = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--run-agents",
                    url,
                    "--dir",
                    str(d),
                    "--agents",
                    str(n),
                    "--batch",
                    str(args.batch),
                    "--echo",
                    "0" if args.server == "gateway" else "1000",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert client.stdout is not None and client.stdin is not None
            line = client.stdout.readline()
            if not line:
                raise SystemExit("the agents process died; is the open-file limit high enough?")
            report = json.loads(line)
            time.sleep(2)
            held = rss_mib(server.pid)
            client.stdin.close()
            client.wait(60)
        finally:
            server.terminate()
            server.wait(30)
    per = (held - base) / max(1, report["connected"]) * 1024
    print(
        f"idle agents: server={args.server} tls-buffer={args.tls_buffer // 1024} KiB, {n} requested"
    )
    ok, secs = report["connected"], report["seconds"]
    print(
        f"  connected {ok} in {secs:.1f} s, failures {report['failures']} {report['first_failure']}"
    )
    print(f"  server RSS {base:.0f} MiB before (baseline), {held:.0f} MiB with the agents")
    print(f"  {per:.1f} KiB per agent")
    at_10k = base + per * 10000 / 1024
    goal = "met" if at_10k <= 2048 else "NOT met"
    print(f"  projected for 10,000 agents: {at_10k:.0f} MiB (goal <= 2048 MiB: {goal})")
    if "echo_p50_ms" in report:
        print(f"  echo round trip on one connection: p50 {report['echo_p50_ms']:.3f} ms")
    print(f"  load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
