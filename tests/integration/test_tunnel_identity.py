"""Which agents the gateway lets in: identity checked per plane CR, CRs created and deleted
while agents are connected (environment: tunnel_env.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.tunnel_env import Env, connected, env, planes, until

pytestmark = pytest.mark.cluster
__all__ = ["env", "planes"]  # module fixtures of the tunnel environment, used as they are


async def _dial(env: Env, query: str, cert_dir: Path | None) -> int | str:
    ctx = ssl.create_default_context(cafile=str(env.certs.gw / "ca.crt"))
    if cert_dir is not None:
        ctx.load_cert_chain(str(cert_dir / "tls.crt"), str(cert_dir / "tls.key"))
    async with aiohttp.ClientSession() as s:
        try:
            async with s.ws_connect(f"wss://localhost:{env.ports['wss']}/ws{query}", ssl=ctx) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as e:
            return e.status
        except aiohttp.ClientError as e:
            return f"tls: {e}"


async def test_identity_is_checked_per_plane_cr(env: Env, planes: dict[str, Any]) -> None:
    beta_dir = planes["beta_dir"]
    q = "?planeType=dataplane&planeID=beta"
    assert await _dial(env, "", beta_dir) == 400
    assert await _dial(env, "?planeType=dataplane", beta_dir) == 400
    assert await _dial(env, q, None) == 401
    assert (
        await _dial(env, "?planeType=workflowplane&planeID=beta", beta_dir) == 401
    )  # no BuildPlane CR
    gamma_dir = env.certs.root / "gamma"
    assert await _dial(env, q, gamma_dir) == 401  # valid only for another plane's CR
    _, stranger = env.certs.agent("stranger")  # a CA that no CR names
    assert str(await _dial(env, q, stranger)).startswith("tls:")
    now = dt.datetime.now(dt.UTC)
    _, expired = env.certs.agent(
        "expired",
        ca=planes["beta_ca"],
        not_before=now - dt.timedelta(days=2),
        not_after=now - dt.timedelta(days=1),
    )
    assert str(await _dial(env, q, expired)).startswith("tls:")
    assert await _dial(env, q, beta_dir) == 101


async def test_cr_created_later_and_deleted_while_connected(
    env: Env, planes: dict[str, Any], clusters: Any
) -> None:
    ca, d = env.certs.agent("delta")
    agent = env.agent(clusters["beta"], d, "buildplane", "delta", name="agent-delta")
    await asyncio.sleep(2)
    assert not await connected(env, "buildplane", "delta")  # no CR yet: refused, retrying
    env.plane_cr("BuildPlane", "delta-bp", "delta", ca.cert_pem)
    await until(
        lambda: connected(env, "buildplane", "delta"), 30, "agent accepted after its CR appeared"
    )
    # a second CR with the same planeID and CA, created while the agent is connected
    env.plane_cr("BuildPlane", "delta-bp2", "delta", ca.cert_pem)

    async def served() -> bool:
        async with env.internal() as c:
            r = await c.get(
                env.proxy("buildplane", "delta", "delta-bp2", "/api/v1/namespaces/default")
            )
            return r.status_code == 200

    await until(served, 30, "live connection authorized for the new CR")
    env.alpha.kubectl("delete", "buildplane", "delta-bp", "delta-bp2", "-n", env.org)

    async def dropped() -> bool:
        return not await connected(env, "buildplane", "delta")

    await until(dropped, 30, "agent dropped after its CRs were deleted")
    agent.stop()
    assert any(line.get("msg") == "agent refused" for line in planes["gateway"].lines())
