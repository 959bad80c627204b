"""Rotation of the gateway CA with the real gateway, controller and agent running.

The topology is installed by `choreoctl install` in fresh namespaces of ``alpha`` (which
runs cert-manager), once per trust issuer; the test kubelet runs its pods. Rotation must
leave the agent connected on the new chain after exactly one reconnect, with no restart
of the agent and the old CA gone from every plane.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_e2e_install import install

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
CHOREOCTL = str(REPO / ".venv" / "bin" / "choreoctl")
CONNECTED = '"msg": "connected to the gateway"'


def _topology(path: Path, uid: str, context: str, issuer: str) -> Path:
    doc = {
        "apiVersion": "choreoctl.dev/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": f"rot-{uid}"},
        "spec": {
            "type": "single-cluster",
            "clusters": [{"name": "local", "context": context}],
            "organization": {"name": f"org-{uid}"},
            "trust": {"issuer": issuer},
            "planes": {
                "control": {
                    "name": "control-plane",
                    "cluster": "local",
                    "namespace": f"cp-{uid}",
                    "domains": {
                        "console": "console.localhost",
                        "api": "api.localhost",
                        "identity": "identity.localhost",
                    },
                },
                "data": [
                    {
                        "name": f"dp-{uid}",
                        "cluster": "local",
                        "namespace": f"dp-{uid}",
                        "domains": {"apps": f"*.apps-{uid}.localhost"},
                        "publicVirtualHost": f"apps-{uid}.localhost",
                    }
                ],
            },
        },
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHOREOCTL, *args], capture_output=True, text=True, timeout=400, check=False
    )


@pytest.mark.parametrize("issuer", ["choreoctl", "cert-manager"])
def test_rotate_keeps_agent_connected_through_one_reconnect(
    issuer: str, clusters: Any, kubelet: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    alpha = clusters["alpha"]
    uid = uuid.uuid4().hex[:6]
    topo = str(_topology(tmp_path / "rot.yaml", uid, alpha.context, issuer))
    common = ("-t", topo, "--kubeconfig", str(alpha.kubeconfig))
    kl = kubelet([alpha])
    # the session's alpha is shared: leave no gateway/agent Deployments for later kubelets
    request.addfinalizer(lambda: _run("uninstall", *common, "--delete-data", "--yes"))
    install(kl, *common, "--skip-preflight", "--timeout", "120")
    before = json.loads(_run("trust", "status", *common, "-o", "json").stdout)
    assert before["ok"], before
    old_fp = before["gateway"]["ca"][0]["fingerprint"]
    agent_log = kl.log(alpha.name, f"dp-{uid}", "cluster-agent")
    connects = agent_log.count(CONNECTED)
    assert connects >= 1
    agent = next(s for s in kl.state() if s["namespace"] == f"dp-{uid}")
    gateway = next(
        s
        for s in kl.state()
        if s["namespace"] == f"cp-{uid}" and s["deployment"] == "cluster-gateway"
    )

    out = _run(
        "trust", "rotate", *common, "--propagation-wait", "3", "--timeout", "120", "-o", "json"
    )
    assert out.returncode == 0, f"{out.stderr}\n{kl.logs()}"
    result = json.loads(out.stdout)
    assert result["old"] == old_fp and result["new"] != old_fp
    assert list(result["reconnected"]) == [f"DataPlane/dp-{uid}"]

    after = json.loads(_run("trust", "status", *common, "-o", "json").stdout)
    assert after["ok"], after
    assert [c["fingerprint"] for c in after["gateway"]["ca"]] == [result["new"]]
    row = after["planes"][0]
    assert [c["fingerprint"] for c in row["gatewayCA"]] == [result["new"]]  # old CA removed
    assert after["gateway"]["serving"]["issuedByCA"]
    agent_now = next(s for s in kl.state() if s["namespace"] == f"dp-{uid}")
    gateway_now = next(
        s
        for s in kl.state()
        if s["namespace"] == f"cp-{uid}" and s["deployment"] == "cluster-gateway"
    )
    assert agent_now["pid"] == agent["pid"]  # the agent process was never restarted
    assert gateway_now["restarts"] == gateway["restarts"] + 1  # the gateway restarted once
    log = kl.log(alpha.name, f"dp-{uid}", "cluster-agent")
    assert log.count(CONNECTED) == connects + 1, log[-4000:]
    assert "certificate verify failed" not in log[len(agent_log) :]
