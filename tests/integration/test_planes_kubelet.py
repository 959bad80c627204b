"""The test kubelet against a real cluster: it runs a Deployment's choreoctl like a kubelet.

A gateway Deployment written here (not the chart) checks the mechanics: mounted Secret
and ConfigMap files, env from a ConfigMap key, mount paths rewritten in args and env,
ports mapped to loopback, a real ServiceAccount token, restart on a new pod template,
stop when the Deployment is deleted.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from choreoctl import pki
from choreoctl.planes.register import GatewayAccess, notify_gateway
from choreoctl.topology.model import Plane, PlaneKind
from tests.integration.test_trust_issuer import apply_crds
from tests.testenv.kubeapi import poll_until

pytestmark = pytest.mark.cluster


def _objects(ns: str, ca: pki.CertKey) -> list[dict[str, Any]]:
    leaf = pki.issue_cert(
        ca, "gw", dns_names=["localhost"], ip_addresses=["127.0.0.1"], server=True
    )
    tls = {"tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem, "ca.crt": ca.cert_pem}
    labels = {"app": "gw"}
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": f"{ns}-planes"},
            "rules": [
                {
                    "apiGroups": ["openchoreo.dev"],
                    "resources": ["dataplanes", "buildplanes", "observabilityplanes"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{ns}-planes"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"{ns}-planes",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "gw", "namespace": ns}],
        },
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


async def test_kubelet_runs_restarts_and_stops_a_choreoctl_deployment(
    cluster: Any, kubelet: Any, tmp_path: Path
) -> None:
    ns = f"kl-{uuid.uuid4().hex[:6]}"
    ca = pki.make_ca("test-gateway-ca")
    manifest = {"apiVersion": "v1", "kind": "List", "items": _objects(ns, ca)}
    apply_crds(cluster)  # the gateway follows the plane CRs
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    kl = kubelet([cluster])

    def running() -> dict[str, Any] | None:
        return next((s for s in kl.state() if s["namespace"] == ns and s["running"]), None)

    pod = poll_until("the gateway process", running)
    health = pod["ports"][8080]
    assert len({pod["ports"][p] for p in (8443, 8444, 8080)}) == 3
    poll_until("/health", lambda: _healthy(health))
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

    # registration's notification reaches the internal port (mTLS, client CA = ca.crt)
    client = pki.issue_cert(ca, "controller-manager", client=True)
    client.write(tmp_path / "c.crt", tmp_path / "c.key")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    access = GatewayAccess(
        f"https://127.0.0.1:{pod['ports'][8444]}",
        str(tmp_path / "c.crt"),
        str(tmp_path / "c.key"),
        str(tmp_path / "ca.crt"),
    )
    plane = Plane(PlaneKind.data, "us", "c", "dp")
    assert await notify_gateway(access, plane, "default-organization") is True
    other = pki.issue_cert(pki.make_ca("other"), "intruder", client=True)
    other.write(tmp_path / "o.crt", tmp_path / "o.key")
    stranger = dataclasses.replace(
        access, client_cert=str(tmp_path / "o.crt"), client_key=str(tmp_path / "o.key")
    )
    assert await notify_gateway(stranger, plane, "x") is False  # refused at the handshake

    # a new pod template (what `kubectl rollout restart` does) restarts the process
    cluster.kubectl("-n", ns, "rollout", "restart", "deployment/gw")
    restarted = poll_until(
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
    poll_until(
        "the process to stop",
        lambda: (
            not Path(f"/proc/{restarted['pid']}").exists()
            or "zombie" in Path(f"/proc/{restarted['pid']}/status").read_text().lower()
        ),
    )
    poll_until("the pod to be forgotten", lambda: all(s["namespace"] != ns for s in kl.state()))
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
    cluster.kubectl("delete", "clusterrole,clusterrolebinding", f"{ns}-planes")
