"""Doctor's agent-logs check reading real agent logs (test kubelet + kwok's kubelet API).

The single-cluster install of test_doctor.py, with the test kubelet running what the
charts deploy (gateway, cluster agents, controller) as real processes: each agent pod's
logs are its process's output (tests/testenv/podlogs.py), so ``check_agent_logs`` reads
what the agents wrote, and an error line added to one agent's log file is reported.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from choreoctl.checks.framework import Status
from choreoctl.topology.model import PlaneKind
from tests.integration.test_doctor import doc, doctor, topology
from tests.testenv import TestCluster
from tests.testenv.kubeapi import poll_until

pytestmark = pytest.mark.cluster
__all__ = ["doc"]  # the module fixture of test_doctor.py, used here as it is
AGENT_TIMEOUT = 90.0  # agents start under the test kubelet, then kwok serves their logs


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
        agents = poll_until(
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
            AGENT_TIMEOUT,
        )
        for ns in namespaces:
            poll_until(
                f"kubectl logs of {ns}/cluster-agent",
                lambda n=ns: _served(doc, n, '"msg"'),
                AGENT_TIMEOUT,
            )

        got = (await doctor(doc))["agent-logs"]
        # Read, not "unavailable": the agents' own output came through the API server.
        assert not any("logs unavailable" in d for d in got.details), got.details

        marker = json.dumps({"level": "error", "msg": f"doctor-marker-{uuid.uuid4().hex}"})
        with Path(agents[data_ns]["log"]).open("a") as f:
            f.write(marker + "\n")
        poll_until("the marker in kubectl logs", lambda: _served(doc, data_ns, marker), 30)
        got = (await doctor(doc))["agent-logs"]
        assert got.status is Status.warn, (got.reason, got.details)
        text = "\n".join([got.reason, *got.details])
        assert f"{data_ns}/" in text and marker in text
    finally:
        # test_doctor.py expects pods whose logs nothing serves: drop the Logs objects.
        for ns in namespaces:
            doc.kubectl("delete", "logs.kwok.x-k8s.io", "--all", "-n", ns, check=False)
