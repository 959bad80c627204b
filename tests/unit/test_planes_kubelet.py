"""The test kubelet's pure parts: which pods it runs, how args, mounts and URLs are rewritten."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from choreoctl.errors import ChoreoError
from tests.testenv.kubelet import Kubelet
from tests.testenv.podspec import Pod, rewrite_mounts, rewrite_ports, runs_choreoctl, template_hash


def deployment(
    name: str, ns: str, labels: dict[str, str], ports: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "command": ["choreoctl"], "ports": ports}]},
            },
        },
    }


def service(
    name: str, ns: str, selector: dict[str, str], ports: list[dict[str, Any]], lb: bool = False
) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": selector, "ports": ports}
    if lb:
        spec["type"] = "LoadBalancer"
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def test_runs_choreoctl_only_for_its_own_command() -> None:
    d = deployment("g", "ns", {}, [])
    assert runs_choreoctl(d)
    d["spec"]["template"]["spec"]["containers"][0]["command"] = ["/bin/sh"]
    assert not runs_choreoctl(d)


def test_template_hash_changes_with_template_only() -> None:
    d = deployment("g", "ns", {"a": "b"}, [])
    h = template_hash(d)
    d["spec"]["replicas"] = 3
    assert template_hash(d) == h
    d["spec"]["template"]["metadata"]["annotations"] = {"choreoctl.dev/restartedAt": "now"}
    assert template_hash(d) != h


def test_rewrite_ports_in_both_flag_forms_only_for_port_flags() -> None:
    args = ["--port", "8443", "--internal-port=8444", "--replicas", "8443", "--health-port", "9"]
    assert rewrite_ports(args, {8443: 1001, 8444: 1002}) == [
        "--port",
        "1001",
        "--internal-port=1002",
        "--replicas",
        "8443",
        "--health-port",
        "9",
    ]


def test_rewrite_mounts_longest_prefix_first_and_whole_segments() -> None:
    mounts = [("/etc/agent", Path("/tmp/a")), ("/etc/agent/tls", Path("/tmp/t"))]
    assert rewrite_mounts("/etc/agent/tls/tls.crt", mounts) == "/tmp/t/tls.crt"
    assert rewrite_mounts("/etc/agent/ca.crt", mounts) == "/tmp/a/ca.crt"
    assert rewrite_mounts("/etc/agents/x", mounts) == "/etc/agents/x"


@pytest.fixture
def kl(tmp_path: Path) -> Kubelet:
    k = Kubelet([], tmp_path)
    gw_labels = {"app.kubernetes.io/name": "cluster-gateway"}
    k.deployments = {
        "ctl": [
            deployment(
                "cluster-gateway",
                "cp",
                gw_labels,
                [
                    {"name": "wss", "containerPort": 8443},
                    {"containerPort": 8444},
                ],
            )
        ],
    }
    k.services = {
        "ctl": [
            service(
                "cluster-gateway",
                "cp",
                gw_labels,
                [{"port": 8443, "targetPort": "wss"}, {"port": 8444}],
            ),
            service(
                "cluster-gateway-external",
                "cp",
                gw_labels,
                [{"port": 8443, "targetPort": 8443}],
                lb=True,
            ),
        ],
        "dp": [service("gateway-external", "apps", {"app": "kgateway"}, [{"port": 443}], lb=True)],
    }
    pod = Pod("ctl", "cp", "cluster-gateway", tmp_path / "gw", ports={8443: 40001, 8444: 40002})
    k.pods = {pod.key: pod}
    return k


def test_resolve_service_names_named_target_ports_and_external_host(kl: Kubelet) -> None:
    fqdn = "cluster-gateway.cp.svc.cluster.local"
    assert kl.resolve("ctl", "other", fqdn, 8443) == 40001
    assert kl.resolve("ctl", "cp", "cluster-gateway", 8444) == 40002
    assert kl.resolve("ctl", "x", "cluster-gateway.cp", 8443) == 40001
    # Service DNS is per cluster: the name does not resolve from another cluster
    assert kl.resolve("dp", "apps", fqdn, 8443) is None
    # an outside name dials the one LoadBalancer backed by a process of ours on that port
    assert kl.resolve("dp", "apps", "gateway.example.com", 8443) == 40001
    assert kl.resolve("dp", "apps", "gateway.example.com", 443) is None
    kl.hosts["gw.internal"] = "ctl/cp/cluster-gateway"
    assert kl.resolve("dp", "apps", "gw.internal", 8444) == 40002


def test_url_rewrite_and_unresolvable_waits(kl: Kubelet) -> None:
    agent = Pod("dp", "agents", "cluster-agent", Path("/nonexistent"))
    url = "wss://gateway.example.com:8443/ws"
    assert kl._rewrite_urls(agent, url) == "wss://127.0.0.1:40001/ws"
    with pytest.raises(ChoreoError, match="cannot resolve"):
        kl._rewrite_urls(agent, "https://nowhere.example.com/x")
