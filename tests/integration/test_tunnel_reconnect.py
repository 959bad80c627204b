"""Agents and the gateway going away and coming back: the status controller keeps plane
status current, and every agent returns after a gateway restart (environment: tunnel_env.py)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import pytest

from choreoctl.kube.client import KubeClient
from tests.integration.tunnel_env import API, Env, env, planes, until, wait_connected

pytestmark = pytest.mark.cluster
__all__ = ["env", "planes"]  # module fixtures of the tunnel environment, used as they are


async def test_controller_keeps_status_current(
    env: Env, planes: dict[str, Any], clusters: Any
) -> None:
    gw = env.certs.gw
    env.alpha.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": API,
                "kind": "Environment",
                "metadata": {"name": "dev", "namespace": env.org},
                "spec": {"dataPlaneRef": "beta-dp", "gateway": {"dnsPrefix": "dev"}},
            }
        ),
    )
    env.alpha.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": API,
                "kind": "Environment",
                "metadata": {"name": "orphan", "namespace": env.org},
                "spec": {"dataPlaneRef": "missing-dp"},
            }
        ),
    )
    env.cmd(
        "controller",
        "controller",
        "run",
        "--gateway-url",
        f"https://127.0.0.1:{env.ports['internal']}",
        "--client-cert",
        str(gw / "ctl.crt"),
        "--client-key",
        str(gw / "ctl.key"),
        "--server-ca",
        str(gw / "ca.crt"),
        "--health-port",
        str(env.ports["ctl"]),
        "--resync",
        "2s",
        "--kubeconfig",
        str(env.alpha.kubeconfig),
        "--context",
        env.alpha.context,
    )
    async with KubeClient.from_kubeconfig(str(env.alpha.kubeconfig), env.alpha.context) as kc:

        async def status(kind: str, name: str) -> dict[str, Any]:
            obj = await kc.get(API, kind, name, env.org)
            return dict((obj or {}).get("status") or {})

        def cond(st: dict[str, Any], ctype: str = "Ready") -> str:
            return next((c["status"] for c in st.get("conditions", []) if c["type"] == ctype), "")

        async def dp_connected() -> bool:
            st = await status("DataPlane", "beta-dp")
            return bool(st.get("agentConnection", {}).get("connected")) and cond(st) == "True"

        await until(dp_connected, 30, "DataPlane status connected")
        st = await status("DataPlane", "beta-dp")
        assert (
            st["agentConnection"]["connectedAgents"] == 1
            and st["agentConnection"]["lastConnectedTime"]
        )
        assert cond(st, "AgentCertificateValid") == "True"
        await until(
            lambda: _cond_async(status, "Environment", "dev", "True"), 30, "Environment dev Ready"
        )
        assert cond(await status("Environment", "orphan")) == "False"

        planes["agents"]["beta"].stop()
        started = time.monotonic()

        async def dp_disconnected() -> bool:
            st = await status("DataPlane", "beta-dp")
            return st.get("agentConnection", {}).get("connected") is False

        await until(dp_disconnected, 30, "DataPlane status disconnected")
        assert time.monotonic() - started < 15  # within seconds, not the reference's minute
        st = await status("DataPlane", "beta-dp")
        assert st["agentConnection"]["lastDisconnectedTime"] and cond(st) == "False"
        await until(
            lambda: _cond_async(status, "Environment", "dev", "False"),
            30,
            "Environment dev not Ready",
        )
        planes["agents"]["beta"] = env.agent(
            clusters["beta"], planes["beta_dir"], "dataplane", "beta"
        )
        await until(dp_connected, 30, "DataPlane connected again")


async def _cond_async(status: Any, kind: str, name: str, want: str) -> bool:
    st = await status(kind, name)
    return any(c["type"] == "Ready" and c["status"] == want for c in st.get("conditions", []))


async def test_gateway_killed_and_restarted_every_agent_returns(
    env: Env, planes: dict[str, Any]
) -> None:
    planes["gateway"].stop(signal.SIGKILL)
    await asyncio.sleep(1)
    planes["gateway"] = env.gateway()
    await wait_connected(env)
    # and a graceful stop drains, closing agents with 1012 so they come back at once
    old = planes["gateway"]
    assert old.stop(signal.SIGTERM) == 0
    assert any(line.get("msg") == "gateway draining" for line in old.lines())
    planes["gateway"] = env.gateway()
    started = time.monotonic()
    await wait_connected(env)
    assert time.monotonic() - started < 20
