"""End to end: install a built-in topology onto real clusters, run its pods, use the tunnel.

The test kubelet runs exactly what the charts deploy (gateway, agents, controller) as real
processes; `choreoctl install` waits until every agent is connected; then the control
plane reaches each data plane's Kubernetes API through the gateway, and `choreoctl
status` reports the whole topology healthy. Multi-region uses one cluster per cluster
the topology names (contexts match its names); single-cluster uses one.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.testenv import ClusterSpec

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
CHOREOCTL = str(REPO / ".venv" / "bin" / "choreoctl")
CONTROL_NS = "openchoreo-control-plane"
ORG = "default-organization"
MULTI_REGION = ("control", "data-us", "data-eu", "data-apac", "build", "observability")
# A chart ↔ runtime mismatch seen while writing this test: the charts grant the gateway
# and controller a Role in the organization namespace, the runtime lists plane CRs at
# cluster scope. Reported; while the gateway log shows it the test is an expected failure.
GATEWAY_RBAC_REFUSAL = "at the cluster scope"


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHOREOCTL, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _gateway_refused_now(kl: Any) -> bool:
    """Whether the gateway's latest log lines all show an RBAC refusal."""
    for s in kl.state():
        if s["deployment"] == "cluster-gateway":
            tail = kl.log(s["cluster"], s["namespace"], s["deployment"]).splitlines()[-3:]
            if tail and all(GATEWAY_RBAC_REFUSAL in line and "403" in line for line in tail):
                return True
    return False


def install(kl: Any, *args: str, timeout: float = 600) -> None:
    """`choreoctl install …` while the kubelet runs; fail fast if the gateway is refused.

    A gateway that cannot list plane CRs (403 in its log) shows within seconds; waiting
    out the install's agent timeout would only cost CI minutes, so 45 s of it ends the
    attempt with the reason.
    """
    proc = subprocess.Popen(
        [CHOREOCTL, "install", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + timeout
    seen_since: float | None = None
    while proc.poll() is None and time.monotonic() < deadline:
        if _gateway_refused_now(kl):
            seen_since = seen_since or time.monotonic()
            if time.monotonic() - seen_since > 45:
                proc.terminate()
                proc.communicate(timeout=30)
                pytest.fail(
                    "the gateway cannot list plane CRs (403): the chart's RBAC does not "
                    f"grant what the runtime reads\n{kl.logs()}"
                )
        else:
            seen_since = None
        time.sleep(1)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, f"install failed:\n{out[-3000:]}\n{err[-3000:]}\n{kl.logs()}"


def _internal_port(kl: Any, cluster: str) -> int:
    for s in kl.state():
        if (s["cluster"], s["namespace"], s["deployment"]) == (
            cluster,
            CONTROL_NS,
            "cluster-gateway",
        ):
            return int(s["ports"][8444])
    raise AssertionError(f"no gateway process: {kl.state()}")


def _tunnel_uids(control: Any, kl: Any, planes: list[str], tmp: Path) -> dict[str, str]:
    """``default`` namespace uid of each data plane's cluster, read through the gateway."""
    obj = json.loads(
        control.kubectl(
            "get", "secret", "-n", CONTROL_NS, "controller-manager-tls", "-o", "json"
        ).stdout
    )
    files = {}
    for key in ("tls.crt", "tls.key", "ca.crt"):
        files[key] = tmp / key
        files[key].write_bytes(base64.b64decode(obj["data"][key]))
    ctx = ssl.create_default_context(cafile=str(files["ca.crt"]))
    ctx.load_cert_chain(str(files["tls.crt"]), str(files["tls.key"]))
    port = _internal_port(kl, control.name)
    uids = {}
    with httpx.Client(verify=ctx, timeout=30, trust_env=False) as http:
        for dp in planes:
            url = f"https://127.0.0.1:{port}/api/proxy/dataplane/{dp}/{ORG}/{dp}/k8s/api/v1/namespaces/default"
            resp = http.get(url)
            assert resp.status_code == 200, f"{dp}: {resp.status_code} {resp.text}"
            uids[dp] = resp.json()["metadata"]["uid"]
    return uids


def _uid(cluster: Any) -> str:
    return cluster.kubectl("get", "ns", "default", "-o", "jsonpath={.metadata.uid}").stdout


def test_multi_region_install_tunnel_and_status(make_clusters, kubelet, tmp_path: Path) -> None:
    cs = make_clusters(*(ClusterSpec(n, nodes=1, cert_manager=True) for n in MULTI_REGION))
    kl = kubelet(list(cs))
    kc = str(cs.kubeconfig)
    install(kl, "-t", "multi-region", "--kubeconfig", kc, "--skip-preflight", "--timeout", "180")
    uids = _tunnel_uids(cs["control"], kl, ["us", "eu", "apac"], tmp_path)
    assert uids == {dp: _uid(cs[f"data-{dp}"]) for dp in ("us", "eu", "apac")}
    out = _run("status", "-t", "multi-region", "--kubeconfig", kc, "-o", "json")
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report["healthy"], report["problems"]
    assert {p["name"] for p in report["planes"] if p.get("connected")} == {
        "us",
        "eu",
        "apac",
        "default",
    }
    assert all(p["gatewayCAMatches"] for p in report["trust"]["planes"])
    # the gateway CA's private key stayed in the control plane cluster
    ca = json.loads(
        cs["control"]
        .kubectl("get", "secret", "-n", CONTROL_NS, "cluster-gateway-ca", "-o", "json")
        .stdout
    )
    key = ca["data"]["tls.key"]
    for name in MULTI_REGION[1:]:
        dump = cs[name].kubectl("get", "secrets,configmaps", "-A", "-o", "json").stdout
        assert key not in dump and base64.b64decode(key).decode() not in dump
    # install again: nothing to do, agents stay connected
    out = _run("install", "-t", "multi-region", "--kubeconfig", kc, "--skip-preflight")
    assert out.returncode == 0, out.stderr


def test_single_cluster_install_tunnel_and_status(make_clusters, kubelet, tmp_path: Path) -> None:
    cs = make_clusters(ClusterSpec("solo", nodes=1, cert_manager=True))
    kl = kubelet(list(cs))
    kc = str(cs.kubeconfig)
    common = ("-t", "single-cluster", "--kubeconfig", kc, "--context", "solo")
    install(kl, *common, "--timeout", "180")  # preflight runs first, as for a user
    assert _tunnel_uids(cs["solo"], kl, ["default"], tmp_path) == {"default": _uid(cs["solo"])}
    out = _run("status", *common, "-o", "json")
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report["healthy"], report["problems"]
