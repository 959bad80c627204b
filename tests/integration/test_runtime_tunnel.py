"""Gateway, agents and controller as real processes on loopback, against the real test clusters.

alpha is the control plane (CRDs, plane CRs, the gateway reads them); beta and gamma are
remote planes whose agents run as ``choreoctl agent run`` with a ServiceAccount token of
their own cluster (the in-cluster environment the test kubelet gives them). Certificates
are made like the charts make them: a gateway CA with the gateway's serving certificate
and the controller's client certificate; one CA per plane with the agent certificate,
whose CA goes into the plane CR's spec.clusterAgent.clientCA.value.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from choreoctl.kube.client import KubeClient
from tests.unit.test_runtime_gateway import Certs, free_port

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
API = "openchoreo.dev/v1alpha1"


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        out = self.log.open("ab")
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=out, cwd=ROOT)
        out.close()
        return self

    def send(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 25.0) -> int | None:
        if self.popen is None:
            return None
        self.send(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(5)

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


@dataclass
class Env:
    dir: Path
    certs: Certs
    org: str
    alpha: Any
    ports: dict[str, int]
    procs: list[Proc] = field(default_factory=list)
    sa_dirs: dict[str, Path] = field(default_factory=dict)

    def cmd(self, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        full_env.update(env or {})
        proc = Proc(
            name, [sys.executable, "-m", "choreoctl", *args], full_env, self.dir / f"{name}.log"
        )
        self.procs.append(proc)
        return proc.start()

    def gateway(self) -> Proc:
        gw = self.certs.gw
        return self.cmd(
            "gateway",
            "gateway",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.ports["wss"]),
            "--internal-port",
            str(self.ports["internal"]),
            "--health-port",
            str(self.ports["health"]),
            "--tls-cert",
            str(gw / "tls.crt"),
            "--tls-key",
            str(gw / "tls.key"),
            "--client-ca",
            str(gw / "ca.crt"),
            "--heartbeat-interval",
            "1s",
            "--heartbeat-timeout",
            "3s",
            "--drain-timeout",
            "5s",
            "--kubeconfig",
            str(self.alpha.kubeconfig),
            "--context",
            self.alpha.context,
        )

    def agent(
        self, cluster: Any, cert_dir: Path, plane_type: str, plane_id: str, name: str = ""
    ) -> Proc:
        return self.cmd(
            name or f"agent-{plane_id}",
            "agent",
            "run",
            "--server-url",
            f"wss://localhost:{self.ports['wss']}/ws",
            "--plane-type",
            plane_type,
            "--plane-id",
            plane_id,
            "--client-cert",
            str(cert_dir / "tls.crt"),
            "--client-key",
            str(cert_dir / "tls.key"),
            "--server-ca",
            str(self.certs.gw / "ca.crt"),
            "--health-port",
            "0",
            "--heartbeat-interval",
            "1s",
            "--heartbeat-timeout",
            "4s",
            env=self.in_cluster(cluster),
        )

    def in_cluster(self, cluster: Any) -> dict[str, str]:
        """What the test kubelet gives a pod: the API address and a ServiceAccount directory."""
        if cluster.name not in self.sa_dirs:
            d = self.dir / f"sa-{cluster.name}"
            d.mkdir()
            cluster.kubectl(
                "create", "serviceaccount", "cluster-agent", "-n", "default", check=False
            )
            cluster.kubectl(
                "create",
                "clusterrolebinding",
                f"cluster-agent-{self.org}",
                "--clusterrole=cluster-admin",
                "--serviceaccount=default:cluster-agent",
                check=False,
            )
            token = cluster.kubectl(
                "create", "token", "cluster-agent", "-n", "default", "--duration=2h"
            ).stdout
            (d / "token").write_text(token.strip())
            if cluster.ca_file:
                (d / "ca.crt").write_bytes(Path(cluster.ca_file).read_bytes())
            self.sa_dirs[cluster.name] = d
        host_port = cluster.server.split("://", 1)[1]
        host, port = host_port.rsplit(":", 1)
        return {
            "KUBERNETES_SERVICE_HOST": host.strip("[]"),
            "KUBERNETES_SERVICE_PORT": port,
            "CHOREOCTL_SERVICEACCOUNT_DIR": str(self.sa_dirs[cluster.name]),
        }

    def plane_cr(self, kind: str, name: str, plane_id: str, ca_pem: bytes) -> None:
        spec: dict[str, Any] = {
            "planeID": plane_id,
            "clusterAgent": {"clientCA": {"value": ca_pem.decode()}},
        }
        if kind == "DataPlane":
            spec["gateway"] = {"publicVirtualHost": f"{name}.apps.example.com"}
        if kind == "ObservabilityPlane":
            spec["observerURL"] = "http://observer.example.com"
        obj = {
            "apiVersion": API,
            "kind": kind,
            "metadata": {"name": name, "namespace": self.org},
            "spec": spec,
        }
        self.alpha.kubectl("apply", "-f", "-", input=json.dumps(obj))

    def internal(self) -> httpx.AsyncClient:
        return self.certs.internal_client()

    def proxy(self, plane_type: str, plane_id: str, cr: str, path: str) -> str:
        port = self.ports["internal"]
        return (
            f"https://127.0.0.1:{port}/api/proxy/{plane_type}/{plane_id}/{self.org}/{cr}/k8s{path}"
        )


async def until(cond: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while True:
        value = await cond()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def env(clusters: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    alpha = clusters["alpha"]
    d = tmp_path_factory.mktemp("runtime")
    org = f"org-{uuid.uuid4().hex[:6]}"
    alpha.kubectl("apply", "-f", str(ROOT / "templates" / "crds"))
    for crd in (
        "dataplanes",
        "buildplanes",
        "observabilityplanes",
        "environments",
        "organizations",
    ):
        alpha.kubectl(
            "wait", "--for=condition=Established", f"crd/{crd}.openchoreo.dev", "--timeout=60s"
        )
    alpha.kubectl("create", "namespace", org)
    ports = {"wss": free_port(), "internal": free_port(), "health": free_port(), "ctl": free_port()}
    e = Env(d, Certs(d / "certs"), org, alpha, ports)
    yield e
    for proc in e.procs:
        proc.stop(signal.SIGKILL, 5)
    alpha.kubectl("delete", "namespace", org, "--wait=false", check=False)


async def _ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient() as c:
            return (await c.get(url, timeout=2)).status_code == 200
    except httpx.HTTPError:
        return False


async def _status(e: Env, plane_type: str, plane_id: str) -> dict[str, Any]:
    async with e.internal() as c:
        r = await c.get(
            f"https://127.0.0.1:{e.ports['internal']}/api/v1/planes/{plane_type}/{plane_id}/status"
        )
        return dict(r.json())


@pytest.fixture(scope="module")
def planes(env: Env, clusters: Any) -> dict[str, Any]:
    """beta: DataPlane beta-dp (planeID beta); gamma: ObservabilityPlane gamma-op."""
    beta_ca, beta_dir = env.certs.agent("beta")
    gamma_ca, gamma_dir = env.certs.agent("gamma")
    env.plane_cr("DataPlane", "beta-dp", "beta", beta_ca.cert_pem)
    env.plane_cr("ObservabilityPlane", "gamma-op", "gamma", gamma_ca.cert_pem)
    gw = env.gateway()
    agents = {
        "beta": env.agent(clusters["beta"], beta_dir, "dataplane", "beta"),
        "gamma": env.agent(clusters["gamma"], gamma_dir, "observabilityplane", "gamma"),
    }
    asyncio.run(_wait_connected(env))
    return {
        "gateway": gw,
        "agents": agents,
        "beta_ca": beta_ca,
        "beta_dir": beta_dir,
        "gamma_ca": gamma_ca,
    }


async def _wait_connected(env: Env) -> None:
    await until(
        lambda: _ready(f"http://127.0.0.1:{env.ports['health']}/ready"), 60, "gateway ready"
    )
    for plane_type, plane_id in (("dataplane", "beta"), ("observabilityplane", "gamma")):
        await until(
            lambda t=plane_type, i=plane_id: _connected(env, t, i),
            60,
            f"{plane_type}/{plane_id} connected",
        )


async def _connected(env: Env, plane_type: str, plane_id: str, n: int = 1) -> bool:
    try:
        return bool((await _status(env, plane_type, plane_id))["connectedAgents"] >= n)
    except httpx.HTTPError:
        return False


# -- the control plane works in remote clusters through the tunnel ---------------------------


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
        status = await _status(env, "dataplane", "beta")
        assert status == {**status, "planeType": "dataplane", "planeID": "beta", "connected": True}


# -- identity -------------------------------------------------------------------------------


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
    assert not await _connected(env, "buildplane", "delta")  # no CR yet: refused, retrying
    env.plane_cr("BuildPlane", "delta-bp", "delta", ca.cert_pem)
    await until(
        lambda: _connected(env, "buildplane", "delta"), 30, "agent accepted after its CR appeared"
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
        return not await _connected(env, "buildplane", "delta")

    await until(dropped, 30, "agent dropped after its CRs were deleted")
    agent.stop()
    assert any(line.get("msg") == "agent refused" for line in planes["gateway"].lines())


# -- status controller ------------------------------------------------------------------------


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


# -- restarts ---------------------------------------------------------------------------------


async def test_gateway_killed_and_restarted_every_agent_returns(
    env: Env, planes: dict[str, Any]
) -> None:
    planes["gateway"].stop(signal.SIGKILL)
    await asyncio.sleep(1)
    planes["gateway"] = env.gateway()
    await _wait_connected(env)
    # and a graceful stop drains, closing agents with 1012 so they come back at once
    old = planes["gateway"]
    assert old.stop(signal.SIGTERM) == 0
    assert any(line.get("msg") == "gateway draining" for line in old.lines())
    planes["gateway"] = env.gateway()
    started = time.monotonic()
    await _wait_connected(env)
    assert time.monotonic() - started < 20
