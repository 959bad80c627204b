"""The control plane works in remote clusters through the tunnel: the gateway's proxy
against real API servers, reached through real agents (environment: tunnel_env.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from tests.integration.tunnel_env import Env, env, plane_status, planes

pytestmark = pytest.mark.cluster
__all__ = ["env", "planes"]  # module fixtures of the tunnel environment, used as they are


async def test_list_create_delete_watch_through_the_proxy(
    env: Env, planes: dict[str, Any], clusters: Any
) -> None:
    ns = f"tun-{uuid.uuid4().hex[:6]}"
    beta = clusters["beta"]
    async with env.internal() as c:
        url = lambda path: env.proxy("dataplane", "beta", "beta-dp", path)  # noqa: E731
        r = await c.get(
            url("/api/v1/namespaces/kube-system/pods"), headers={"Authorization": "Bearer nobody"}
        )
        assert r.status_code == 200 and r.json()["kind"] == "PodList"
        r = await c.post(
            url("/api/v1/namespaces"),
            json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        )
        assert r.status_code == 201, r.text
        deploy = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]},
                },
            },
        }
        r = await c.post(url(f"/apis/apps/v1/namespaces/{ns}/deployments"), json=deploy)
        assert r.status_code == 201, r.text
        assert (
            beta.kubectl("get", "deployment", "web", "-n", ns, "-o", "name").stdout.strip()
            == "deployment.apps/web"
        )

        # a watch streams events as they happen in the remote cluster
        events: list[dict[str, Any]] = []

        async def follow() -> None:
            async with c.stream(
                "GET", url(f"/api/v1/namespaces/{ns}/configmaps?watch=true")
            ) as resp:
                assert resp.status_code == 200
                async for line in resp.aiter_lines():
                    if line:
                        events.append(json.loads(line))
                        if any(ev["object"]["metadata"]["name"] == "late" for ev in events):
                            return

        watcher = asyncio.create_task(follow())
        await asyncio.sleep(1.0)
        beta.kubectl("create", "configmap", "late", "-n", ns, "--from-literal=a=b")
        await asyncio.wait_for(watcher, 30)
        assert any(
            ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "late" for ev in events
        )

        r = await c.delete(url(f"/apis/apps/v1/namespaces/{ns}/deployments/web"))
        assert r.status_code == 200
        assert beta.kubectl("get", "deployment", "web", "-n", ns, check=False).returncode != 0
        await c.delete(url(f"/api/v1/namespaces/{ns}"))


async def test_log_follow_is_streamed_not_refused(
    env: Env, planes: dict[str, Any], clusters: Any
) -> None:
    """kwok nodes run no kubelet, so the API server cannot fetch logs; what matters here is
    that follow=true reaches the remote API server through a stream (the reference: 501)."""
    async with env.internal() as c:
        path = "/api/v1/namespaces/default/pods/nonexistent/log?follow=true"
        r = await c.get(env.proxy("dataplane", "beta", "beta-dp", path))
        assert r.status_code == 404 and r.json()["kind"] == "Status"


async def test_proxy_rules_against_a_real_plane(env: Env, planes: dict[str, Any]) -> None:
    async with env.internal() as c:
        url = lambda path, cr="beta-dp": env.proxy("dataplane", "beta", cr, path)  # noqa: E731
        assert (await c.get(url("/api/v1/namespaces/kube-system/secrets"))).status_code == 403
        assert (await c.get(url("/api/v1/namespaces/%2E%2E/pods"))).status_code == 400
        assert (await c.get(url("/api/v1/pods", cr="not-a-cr"))).status_code == 403
        r = await c.get(env.proxy("dataplane", "nobody", "x", "/api/v1/pods"))
        assert r.status_code == 502
        status = await plane_status(env, "dataplane", "beta")
        assert status == {**status, "planeType": "dataplane", "planeID": "beta", "connected": True}
