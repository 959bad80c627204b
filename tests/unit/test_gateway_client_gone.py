"""A client that goes away ends its stream upstream at once, even when the stream is quiet.

A watch or ``follow=true`` log can be silent for minutes; the gateway must not wait for
the next chunk to notice that the client closed. Real loopback sockets: gateway, agent
and a small API server whose stream sends one line and then nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from choreoctl.kube.client import KubeClient
from choreoctl.runtime.agent_exec import Executor
from tests.unit.gateway_harness import (
    Certs,
    Harness,
    connected_agent,
    free_port,
    gateway_config,
    proxy_url,
    wait_for,
)


class QuietAPI:
    """One streaming path: a line, then silence until the request ends."""

    def __init__(self) -> None:
        self.open = 0
        self.ended = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> QuietAPI:
        app = web.Application()
        app.router.add_get("/api/v1/namespaces/default/pods/p/log", self.follow)
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def follow(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        self.open += 1
        try:
            await resp.write(b"first line\n")
            await asyncio.sleep(3600)
        finally:
            self.open -= 1
            self.ended.set()
        return resp

    async def close(self) -> None:
        if self.runner:
            await self.runner.cleanup()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Harness, QuietAPI, Executor]]:
    certs = Certs(tmp_path)
    api = await QuietAPI().start()
    harness = await Harness(certs, gateway_config(certs)).start()
    kube = KubeClient(api.url, token="t")
    yield harness, api, Executor(kube, timeout=2.0)
    await harness.close()
    await kube.aclose()
    await api.close()


async def test_closing_a_quiet_stream_ends_it_upstream(
    env: tuple[Harness, QuietAPI, Executor],
) -> None:
    h, api, ex = env
    agent = await connected_agent(h, ex)
    url = proxy_url(h, "/api/v1/namespaces/default/pods/p/log?follow=true")
    async with h.certs.internal_client() as c, c.stream("GET", url) as resp:
        assert resp.status_code == 200
        lines = resp.aiter_lines()
        assert await asyncio.wait_for(anext(lines), 10) == "first line"
        assert api.open == 1
    await asyncio.wait_for(api.ended.wait(), 5)
    assert api.open == 0
    assert agent.connected
    await wait_for(lambda: h.gateway.pending == 0, 5)
