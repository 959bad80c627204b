"""``follow=true`` pod logs streamed through the gateway and a real agent, from real pod logs.

A pod in beta gets the beta agent's own log file as its logs (kwok serves it: see
tests/testenv/podlogs.py). Through the gateway's proxy, ``GET …/pods/NAME/log?follow=true``
must deliver what the file holds, then each line appended while the stream is open; and
closing the client's stream must end the log request in beta's API server (its
``apiserver_longrunning_requests`` gauge for pods/log goes back to where it was) even when
no further line comes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.tunnel_env import Env, env, planes, until
from tests.testenv.podlogs import LogPump, serve_pod_log

pytestmark = pytest.mark.cluster
__all__ = ["env", "planes"]  # module fixtures of the tunnel tests, used here as they are


def log_requests(cluster: Any) -> int:
    """Open pods/log requests in the cluster's API server (its long-running gauge)."""
    with cluster.api() as api:
        text = api.request("GET", "/metrics").text
    total = 0
    for line in text.splitlines():
        if line.startswith("apiserver_longrunning_requests{") and (
            'resource="pods"' in line and 'subresource="log"' in line
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


async def next_line(lines: AsyncIterator[str], pred: Any, timeout: float) -> list[str]:
    """Lines read until one matches ``pred`` (AssertionError after ``timeout``)."""
    seen: list[str] = []

    async def read() -> None:
        async for line in lines:
            seen.append(line)
            if pred(line):
                return
        raise AssertionError(f"the stream ended; last lines {seen[-5:]}")

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise AssertionError(f"no matching line within {timeout}s; last {seen[-5:]}") from None
    return seen


@pytest.fixture
def logged_pod(clusters: Any, planes: dict[str, Any]) -> Any:
    """A Running pod in beta whose logs are the beta agent's log file (pump running)."""
    beta = clusters["beta"]
    ns = f"tlogs-{uuid.uuid4().hex[:6]}"
    beta.kubectl("create", "namespace", ns)
    beta.kubectl("run", "agent-logs", "-n", ns, "--image=example/none")
    deadline = time.monotonic() + 60
    while (
        beta.kubectl("get", "pod", "agent-logs", "-n", ns, "-o", "jsonpath={.status.phase}").stdout
        != "Running"
    ):
        assert time.monotonic() < deadline, "pod agent-logs not Running within 60 s"
        time.sleep(0.5)
    source = Path(planes["agents"]["beta"].log)
    pump = LogPump().start()
    try:
        with beta.api() as api:
            serve_pod_log(api, pump, ns, "agent-logs", source)
        yield ns, source
    finally:
        pump.stop()
        beta.kubectl("delete", "namespace", ns, "--wait=false", check=False)


async def test_follow_streams_lines_appended_while_open(
    env: Env, clusters: Any, logged_pod: Any
) -> None:
    ns, source = logged_pod
    beta = clusters["beta"]
    before = await asyncio.to_thread(log_requests, beta)
    path = f"/api/v1/namespaces/{ns}/pods/agent-logs/log?follow=true"
    marker = json.dumps({"level": "info", "msg": f"appended-{uuid.uuid4().hex}"})
    async with env.internal() as c:
        async with c.stream("GET", env.proxy("dataplane", "beta", "beta-dp", path)) as resp:
            assert resp.status_code == 200, await resp.aread()
            lines = resp.aiter_lines()
            # What the agent wrote before the request: its own JSON log lines.
            first = await next_line(lines, lambda line: '"msg"' in line, 30)
            written = source.read_text().splitlines()
            assert all(line in written for line in first)
            assert await asyncio.to_thread(log_requests, beta) == before + 1
            with source.open("a") as f:
                f.write(marker + "\n")
            started = time.monotonic()
            await next_line(lines, lambda line: line == marker, 30)
            assert time.monotonic() - started < 10


async def test_closing_the_client_stream_ends_the_log_request(
    env: Env, clusters: Any, logged_pod: Any
) -> None:
    ns, _source = logged_pod
    beta = clusters["beta"]
    before = await asyncio.to_thread(log_requests, beta)
    path = f"/api/v1/namespaces/{ns}/pods/agent-logs/log?follow=true"
    async with env.internal() as c:
        async with c.stream("GET", env.proxy("dataplane", "beta", "beta-dp", path)) as resp:
            assert resp.status_code == 200
            # Held in a name: an unreferenced line iterator is closed when collected,
            # which closes the response (and the gateway, rightly, ends the stream).
            lines = resp.aiter_lines()
            await next_line(lines, lambda line: '"msg"' in line, 30)
            assert await asyncio.to_thread(log_requests, beta) == before + 1
    # The client closed its stream and no line follows: the request must end in beta's
    # API server all the same (a direct request does within a second).

    async def ended() -> bool:
        return await asyncio.to_thread(log_requests, beta) == before

    await until(ended, 15, "the pods/log request ended in beta's API server")
