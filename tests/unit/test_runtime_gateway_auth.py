"""Who may connect to the gateway: the internal port's client CA, the agent endpoint's checks
per plane CR, live connections re-checked when CRs change, and what a refused agent is told."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import httpx
import pytest

from choreoctl import pki
from choreoctl.runtime.agent_exec import Executor
from tests.unit.gateway_harness import (
    Certs,
    FakeAPI,
    Harness,
    connected_agent,
    gateway_config,
    proxy_url,
    wait_for,
)


async def test_internal_port_requires_the_gateway_ca(
    env: tuple[Harness, FakeAPI, Executor],
) -> None:
    h, _, _ = env
    ctx = ssl.create_default_context(cafile=str(h.certs.gw / "ca.crt"))
    async with httpx.AsyncClient(verify=ctx) as c:
        with pytest.raises(httpx.TransportError):
            await c.get(f"https://127.0.0.1:{h.cfg.internal_port}/api/v1/planes")


async def _ws_status(h: Harness, query: str, cert_dir: Path | None) -> int:
    ctx = ssl.create_default_context(cafile=str(h.certs.gw / "ca.crt"))
    if cert_dir is not None:
        ctx.load_cert_chain(str(cert_dir / "tls.crt"), str(cert_dir / "tls.key"))
    async with aiohttp.ClientSession() as s:
        try:
            async with s.ws_connect(f"wss://localhost:{h.cfg.port}/ws{query}", ssl=ctx) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as e:
            return e.status


async def test_agent_endpoint_status_codes(env: tuple[Harness, FakeAPI, Executor]) -> None:
    h, _, _ = env
    ca, d = h.certs.agent("dp1")
    h.add_cr("dp1", ca)
    bp_ca, other = h.certs.agent("bp1")
    h.add_cr("bp1", bp_ca, plane_type="buildplane")
    assert await _ws_status(h, "", d) == 400
    assert await _ws_status(h, "?planeType=controlplane&planeID=dp1", d) == 400
    assert await _ws_status(h, "?planeType=dataplane&planeID=dp1", None) == 401
    assert (
        await _ws_status(h, "?planeType=dataplane&planeID=dp1", other) == 401
    )  # another plane's CA
    assert await _ws_status(h, "?planeType=buildplane&planeID=dp1", d) == 401
    assert await _ws_status(h, "?planeType=dataplane&planeID=dp1", d) == 101
    _, stranger = h.certs.agent("stranger")  # a CA no CR names: the TLS handshake fails
    with pytest.raises(aiohttp.ClientError):
        await _ws_status(h, "?planeType=dataplane&planeID=dp1", stranger)
    async with httpx.AsyncClient() as c:
        text = (await c.get(f"http://127.0.0.1:{h.cfg.health_port}/metrics")).text
    assert 'choreoctl_gateway_auth_failures_total{reason="no_certificate"} 1' in text
    assert 'choreoctl_gateway_auth_failures_total{reason="bad_query"} 2' in text


async def test_cr_changes_revalidate_live_connections(
    env: tuple[Harness, FakeAPI, Executor],
) -> None:
    h, _, ex = env
    agent = await connected_agent(h, ex)
    ca = pki.CertKey((h.certs.root / "dp1" / "ca.crt").read_bytes(), b"")
    async with h.certs.internal_client() as c:
        h.add_cr(
            "dp1-second", ca, plane_id="dp1", namespace="org2"
        )  # created after the agent connected
        await wait_for(lambda: ("org2", "dp1-second") in h.gateway.registry.all()[0].authorized)
        r = await c.get(proxy_url(h, "/api/v1/namespaces/default/pods", cr="dp1-second", ns="org2"))
        assert r.status_code == 200
        h.source.remove("dataplane", ("org2", "dp1-second"))
        h.source.remove("dataplane", ("default-org", "dp1"))  # deleted while connected: dropped
        await wait_for(lambda: not h.gateway.registry.all())
        await wait_for(lambda: agent.failures.get() >= 1)  # and refused when it comes back


async def _dial_error(h: Harness, url: str, d: Path) -> str:
    from choreoctl.errors import ChoreoError
    from choreoctl.runtime.agent_dial import client_context, dial

    async with aiohttp.ClientSession() as s:
        try:
            ctx = client_context(str(d / "tls.crt"), str(d / "tls.key"), str(h.certs.gw / "ca.crt"))
            ws = await dial(s, url, "dataplane", "dp1", ctx, 5)
        except ChoreoError as e:
            return f"{type(e).__name__}: {e.message}"
        await ws.close()
        return "connected"


async def test_agent_dial_errors_say_what_to_fix(tmp_path: Path) -> None:
    import datetime as dt

    certs = Certs(tmp_path)
    h = await Harness(certs, gateway_config(certs, host="0.0.0.0")).start()
    try:
        ca, ok = certs.agent("dp1")
        h.add_cr("dp1", ca)
        port = h.cfg.port
        assert await _dial_error(h, f"wss://localhost:{port}/ws", ok) == "connected"
        err = await _dial_error(h, f"wss://127.0.0.2:{port}/ws", ok)
        assert (
            err.startswith("TrustError")
            and "it holds: localhost, cluster-gateway, 127.0.0.1" in err
        )
        _, stranger = certs.agent("stranger")
        assert "hung up during the handshake" in await _dial_error(
            h, f"wss://localhost:{port}/ws", stranger
        )
        now = dt.datetime.now(dt.UTC)
        _, old = certs.agent(
            "old",
            ca=ca,
            not_before=now - dt.timedelta(days=3),
            not_after=now - dt.timedelta(days=1),
        )
        assert "expired at" in await _dial_error(h, f"wss://localhost:{port}/ws", old)
        bp_ca, bp = certs.agent("bp1")
        h.add_cr("bp1", bp_ca, plane_type="buildplane")  # a known CA, but for another plane
        assert "HTTP 401" in await _dial_error(h, f"wss://localhost:{port}/ws", bp)
    finally:
        await h.close()
