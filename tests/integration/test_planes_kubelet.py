"""The test kubelet against a real cluster: it runs a Deployment's choreoctl like a kubelet.

A gateway Deployment written here (not the chart) checks the mechanics: mounted Secret
and ConfigMap files, env from a ConfigMap key, mount paths rewritten in args and env,
ports mapped to loopback, a real ServiceAccount token, restart on a new pod template,
stop when the Deployment is deleted.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from choreoctl import pki

pytestmark = pytest.mark.cluster


def _wait(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _objects(ns: str) -> list[dict[str, Any]]:
    ca = pki.make_ca("test-gateway-ca")
    leaf = pki.issue_cert(
        ca, "gw", dns_names=["localhost"], ip_addresses=["127.0.0.1"], server=True
    )
    tls = {"tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem, "ca.crt": ca.cert_pem}
    labels = {"app": "gw"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "gw", "namespace": ns}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "gw-tls", "namespace": ns},
            "data": {k: base64.b64encode(v).decode() for k, v in tls.items()},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "gw-cfg", "namespace": ns},
            "data": {"interval": "7s"},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "gw", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "gw",
                        "containers": [
                            {
                                "name": "gateway",
                                "image": "choreoctl/choreoctl:test",
                                "command": ["choreoctl"],
                                "args": [
                                    "gateway",
                                    "serve",
                                    "--port",
                                    "8443",
                                    "--internal-port",
                                    "8444",
                                    "--health-port",
                                    "8080",
                                    "--tls-cert",
                                    "/etc/gw/tls/tls.crt",
                                    "--tls-key",
                                    "/etc/gw/tls/tls.key",
                                    "--client-ca",
                                    "/etc/gw/tls/ca.crt",
                                ],
                                "env": [
                                    {
                                        "name": "HEARTBEAT_INTERVAL",
                                        "valueFrom": {
                                            "configMapKeyRef": {"name": "gw-cfg", "key": "interval"}
                                        },
                                    },
                                    {"name": "EXTRA_FILE", "value": "/etc/gw/tls/ca.crt"},
                                ],
                                "ports": [
                                    {"name": "wss", "containerPort": 8443},
                                    {"name": "internal", "containerPort": 8444},
                                    {"name": "health", "containerPort": 8080},
                                ],
                                "volumeMounts": [{"name": "tls", "mountPath": "/etc/gw/tls"}],
                            }
                        ],
                        "volumes": [{"name": "tls", "secret": {"secretName": "gw-tls"}}],
                    },
                },
            },
        },
    ]


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in raw if b"=" in e)


def test_kubelet_runs_restarts_and_stops_a_choreoctl_deployment(cluster: Any, kubelet: Any) -> None:
    ns = f"kl-{uuid.uuid4().hex[:6]}"
    manifest = {"apiVersion": "v1", "kind": "List", "items": _objects(ns)}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    kl = kubelet([cluster])

    def running() -> dict[str, Any] | None:
        return next((s for s in kl.state() if s["namespace"] == ns and s["running"]), None)

    pod = _wait("the gateway process", running)
    health = pod["ports"][8080]
    assert len({pod["ports"][p] for p in (8443, 8444, 8080)}) == 3
    _wait("/health", lambda: _healthy(health))
    env = _environ(pod["pid"])
    assert env["HEARTBEAT_INTERVAL"] == "7s"
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == cluster.server.rsplit(":", 1)[1]
    assert Path(env["EXTRA_FILE"]).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    token = (Path(env["CHOREOCTL_SERVICEACCOUNT_DIR"]) / "token").read_text()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == f"system:serviceaccount:{ns}:gw"
    cmdline = Path(f"/proc/{pod['pid']}/cmdline").read_bytes().split(b"\0")
    assert b"/etc/gw/tls/tls.crt" not in cmdline and str(health).encode() in cmdline

    # a new pod template (what `kubectl rollout restart` does) restarts the process
    cluster.kubectl("-n", ns, "rollout", "restart", "deployment/gw")
    restarted = _wait(
        "a restart",
        lambda: next(
            (
                s
                for s in kl.state()
                if s["namespace"] == ns and s["running"] and s["pid"] != pod["pid"]
            ),
            None,
        ),
    )
    assert restarted["restarts"] == 1 and restarted["ports"] == pod["ports"]

    # a deleted Deployment stops its process
    cluster.kubectl("-n", ns, "delete", "deployment", "gw")
    _wait(
        "the process to stop",
        lambda: (
            not Path(f"/proc/{restarted['pid']}").exists()
            or "zombie" in Path(f"/proc/{restarted['pid']}/status").read_text().lower()
        ),
    )
    _wait("the pod to be forgotten", lambda: all(s["namespace"] != ns for s in kl.state()))
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
