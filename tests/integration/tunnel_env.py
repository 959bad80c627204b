"""The tunnel integration tests' environment: gateway, agents and controller as real processes.

alpha is the control plane (CRDs, plane CRs, the gateway reads them); beta and gamma are
remote planes whose agents run as ``choreoctl agent run`` with a ServiceAccount token of
their own cluster (the in-cluster environment the test kubelet gives them). Certificates
are made like the charts make them: a gateway CA with the gateway's serving certificate
and the controller's client certificate; one CA per plane with the agent certificate,
whose CA goes into the plane CR's spec.clusterAgent.clientCA.value.

The ``env`` and ``planes`` fixtures are module-scoped: a test module imports them (and
lists them in ``__all__``) and gets one gateway with its agents for all of its tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.gateway_harness import Certs, free_port

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


async def plane_status(e: Env, plane_type: str, plane_id: str) -> dict[str, Any]:
    """The gateway's status of one plane, from its internal API (as the controller reads it)."""
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
    asyncio.run(wait_connected(env))
    return {
        "gateway": gw,
        "agents": agents,
        "beta_ca": beta_ca,
        "beta_dir": beta_dir,
        "gamma_ca": gamma_ca,
    }


async def wait_connected(env: Env) -> None:
    """Wait until the gateway is ready and the beta and gamma agents are connected to it."""
    await until(
        lambda: _ready(f"http://127.0.0.1:{env.ports['health']}/ready"), 60, "gateway ready"
    )
    for plane_type, plane_id in (("dataplane", "beta"), ("observabilityplane", "gamma")):
        await until(
            lambda t=plane_type, i=plane_id: connected(env, t, i),
            60,
            f"{plane_type}/{plane_id} connected",
        )


async def connected(env: Env, plane_type: str, plane_id: str, n: int = 1) -> bool:
    """Whether at least ``n`` agents of the plane are connected (False while unreachable)."""
    try:
        return bool((await plane_status(env, plane_type, plane_id))["connectedAgents"] >= n)
    except httpx.HTTPError:
        return False
