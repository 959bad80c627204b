"""``agent probe``'s verdicts against real loopback listeners, its JSON and its exit code."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from choreoctl import pki
from choreoctl.errors import ClusterError
from choreoctl.runtime.probe import ProbeResult, names_cover, probe, tcp_probe

CHOREOCTL = str(Path(sys.executable).parent / "choreoctl")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def tls_server(tmp: Path, dns: Sequence[str], ips: Sequence[str] = ()) -> AsyncIterator[int]:
    """A TLS listener on loopback serving a leaf with these SANs; yields its port."""
    ca = pki.make_ca("probe test CA")
    leaf = pki.issue_cert(ca, "gw", dns_names=list(dns), ip_addresses=list(ips), server=True)
    leaf.write(tmp / "s.crt", tmp / "s.key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp / "s.crt", tmp / "s.key")

    async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


@contextmanager
def blackhole() -> Iterator[int]:
    """A listener whose accept queue is full: the kernel drops further SYNs (a firewall)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = int(lsock.getsockname()[1])
    fillers = []
    try:
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        yield port
    finally:
        for c in fillers:
            c.close()
        lsock.close()


async def test_refused_is_reachable_and_says_nothing_listens() -> None:
    port = closed_port()
    result = await probe("127.0.0.1", port, 2)
    assert (result.verdict, result.reachable, result.cert_names) == ("refused", True, ())
    assert f"nothing listens on {port}" in result.detail
    assert await tcp_probe("127.0.0.1", port, 2) == ("refused", result.detail)


async def test_tls_names_covering_the_host_pass(tmp_path: Path) -> None:
    async with tls_server(tmp_path, ["gw.example.com"], ["127.0.0.1"]) as port:
        result = await probe("127.0.0.1", port, 3)
        assert (await tcp_probe("127.0.0.1", port, 3))[0] == "open"
    assert result.verdict == "open" and result.reachable
    assert result.cert_names == ("gw.example.com", "127.0.0.1")
    assert "covers 127.0.0.1" in result.detail


async def test_tls_names_not_covering_the_host_are_named(tmp_path: Path) -> None:
    async with tls_server(tmp_path, ["other.example.com", "*.apps.example.com"]) as port:
        result = await probe("localhost", port, 3)
    assert result.verdict == "open" and result.reachable
    assert result.cert_names == ("other.example.com", "*.apps.example.com")
    assert "(other.example.com, *.apps.example.com) do not cover localhost" in result.detail


async def test_plain_tcp_listener_is_open_without_tls() -> None:
    async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.0 400 nope\r\n\r\n")
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        result = await probe("127.0.0.1", port, 3)
    finally:
        server.close()
        await server.wait_closed()
    assert result.verdict == "open" and result.cert_names == ()
    assert "no TLS handshake" in result.detail


async def test_unresolved_and_timeout_are_not_reachable() -> None:
    gone = await probe("gateway.example.invalid", 8443, 3)
    assert gone.verdict == "unresolved" and not gone.reachable
    assert "does not resolve" in gone.detail
    with blackhole() as port:
        slow = await probe("127.0.0.1", port, 1)
    assert slow.verdict == "timeout" and not slow.reachable
    assert "within 1s" in slow.detail


def test_names_cover_like_a_tls_client() -> None:
    assert names_cover(["*.example.com"], "gw.example.com")
    assert not names_cover(["*.example.com"], "a.gw.example.com")
    assert not names_cover(["*.example.com"], "example.com")
    assert names_cover(["GW.Example.com."], "gw.example.com")
    assert names_cover(["::1"], "0:0::1") and names_cover(["10.0.0.7"], "10.0.0.7")
    assert not names_cover(["10.0.0.7.example.com"], "10.0.0.7")
    assert not names_cover([], "gw.example.com")


def test_json_line_round_trips_through_a_pod_log() -> None:
    result = ProbeResult("open", "x accepts", ("a.example.com", "10.0.0.1"))
    line = result.to_json()
    assert json.loads(line) == {
        "verdict": "open",
        "detail": "x accepts",
        "certNames": ["a.example.com", "10.0.0.1"],
    }
    log = f"some warning\n{{not json\n{line}\n"
    assert ProbeResult.from_log(log) == result
    with pytest.raises(ClusterError, match="no verdict; its log ends: Traceback"):
        ProbeResult.from_log('{"verdict": "maybe"}\nTraceback (most recent call last)\n')
    with pytest.raises(ClusterError, match="empty log"):
        ProbeResult.from_log("")


def test_cli_prints_one_json_line_and_exits_by_reachability() -> None:
    port = closed_port()
    ok = subprocess.run(
        [CHOREOCTL, "agent", "probe", "127.0.0.1", str(port), "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert len(ok.stdout.splitlines()) == 1
    assert json.loads(ok.stdout)["verdict"] == "refused"
    bad = subprocess.run(
        [CHOREOCTL, "agent", "probe", "gw.example.invalid", "8443"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and json.loads(bad.stdout)["verdict"] == "unresolved"


def test_probe_pod_uses_the_agents_image_and_pull_secrets() -> None:
    from choreoctl.checks.preflight.connectivity import probe_image, probe_pod
    from choreoctl.render import render_topology
    from choreoctl.topology.loader import load_topology

    digest = "sha256:" + "ab" * 32
    topo = load_topology(
        "multi-cluster",
        sets=[
            "spec.images.registry=registry.internal:5000/mirror",
            "spec.images.pullSecrets=[regcred]",
            "spec.images.tag=9.9.9",
            f"spec.images.digests.choreoctl={digest}",
        ],
    )
    agents = [
        m.obj["spec"]["template"]["spec"]
        for manifests in render_topology(topo).directories.values()
        for m in manifests
        if m.kind == "Deployment" and m.obj["metadata"]["name"] == "cluster-agent"
    ]
    assert agents
    image = probe_image(topo)
    assert image == f"registry.internal:5000/mirror/choreoctl/choreoctl:9.9.9@{digest}"
    pod = probe_pod("ns", image, "gw.example.com", 8443, 2, list(topo.images.pull_secrets))
    for spec in agents:
        assert spec["containers"][0]["image"] == pod["spec"]["containers"][0]["image"]
        assert spec["imagePullSecrets"] == pod["spec"]["imagePullSecrets"]
    args = pod["spec"]["containers"][0]["args"]
    assert args == ["agent", "probe", "gw.example.com", "8443", "--timeout", "2"]
    assert pod["spec"]["restartPolicy"] == "Never" and pod["spec"]["activeDeadlineSeconds"]
