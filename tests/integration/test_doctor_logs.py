"""Doctor's agent-logs check reading real agent logs (test kubelet + kwok's kubelet API).

The single-cluster install of test_doctor.py, with the test kubelet running what the
charts deploy (gateway, cluster agents, controller) as real processes: each agent pod's
logs are its process's output (tests/testenv/podlogs.py), so ``check_agent_logs`` reads
what the agents wrote, and an error line added to one agent's log file is reported.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from choreoctl.checks.framework import Status
from choreoctl.topology.model import PlaneKind
from tests.integration.test_doctor import doc, doctor, topology
from tests.testenv import TestCluster

pytestmark = pytest.mark.cluster
__all__ = ["doc"]  # the module fixture of test_doctor.py, used here as it is


def _wait(what: str, check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def _served(tc: TestCluster, ns: str, text: str = "") -> bool:
    """``kubectl logs`` of the namespace's agent works (and shows ``text``)."""
    done = tc.kubectl("logs", "-n", ns, "deploy/cluster-agent", "--tail=200", check=False)
    return done.returncode == 0 and text in done.stdout


async def test_agent_logs_check_reports_an_error_line_from_the_agents_log(
    doc: TestCluster, kubelet: Any
) -> None:
    topo = topology(doc.context)
    namespaces = [p.namespace for p in topo.planes if p.kind is not PlaneKind.control]
    data_ns = topo.planes_of(PlaneKind.data)[0].namespace
    kl = kubelet([doc])
    try:
        agents = _wait(
            "every cluster-agent process running",
            lambda: (
                {
                    s["namespace"]: s
                    for s in kl.state()
                    if s["deployment"] == "cluster-agent" and s["running"]
                }.keys()
                >= set(namespaces)
                and {s["namespace"]: s for s in kl.state() if s["deployment"] == "cluster-agent"}
            ),
        )
        for ns in namespaces:
            _wait(f"kubectl logs of {ns}/cluster-agent", lambda n=ns: _served(doc, n, '"msg"'))

        got = (await doctor(doc))["agent-logs"]
        # Read, not "unavailable": the agents' own output came through the API server.
        assert not any("logs unavailable" in d for d in got.details), got.details

        marker = json.dumps({"level": "error", "msg": f"doctor-marker-{uuid.uuid4().hex}"})
        with Path(agents[data_ns]["log"]).open("a") as f:
            f.write(marker + "\n")
        _wait("the marker in kubectl logs", lambda: _served(doc, data_ns, marker), 30)
        got = (await doctor(doc))["agent-logs"]
        assert got.status is Status.warn, (got.reason, got.details)
        text = "\n".join([got.reason, *got.details])
        assert f"{data_ns}/" in text and marker in text
    finally:
        # test_doctor.py expects pods whose logs nothing serves: drop the Logs objects.
        for ns in namespaces:
            doc.kubectl("delete", "logs.kwok.x-k8s.io", "--all", "-n", ns, check=False)
