"""A clientCA held in a Secret: rotating the Secret re-admits and drops agents live.

The gateway runs in this process with :class:`KubePlaneSource` reading a DataPlane CR
from a real API server; its ``clientCA`` is a ``secretKeyRef``. Rewriting the Secret
(the CR itself untouched) must drop the agent whose CA left the bundle and admit the one
whose CA joined it, within a few poll periods, with no notify and no restart.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from choreoctl import pki
from choreoctl.kube.client import KubeClient
from choreoctl.runtime.agent_exec import Executor
from choreoctl.runtime.gateway.auth import KubePlaneSource
from tests.integration.test_trust_issuer import apply_crds
from tests.unit.gateway_harness import (
    Certs,
    FakeAPI,
    Harness,
    agent_config,
    gateway_config,
    wait_for,
)

pytestmark = pytest.mark.cluster
POLL = 0.3


def secret(ns: str, *cas: pki.CertKey) -> str:
    pem = b"".join(ca.cert_pem for ca in cas)
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "agent-ca", "namespace": ns},
            "data": {"ca.crt": base64.b64encode(pem).decode()},
        }
    )


@pytest.fixture
async def org(cluster: Any) -> AsyncIterator[str]:
    apply_crds(cluster)
    name = f"org-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


async def test_rotating_the_ca_secret_swaps_which_agent_is_admitted(
    cluster: Any, org: str, tmp_path: Path
) -> None:
    certs = Certs(tmp_path)
    old_ca, old_dir = certs.agent("old")
    new_ca, new_dir = certs.agent("new")
    cluster.kubectl("apply", "-f", "-", input=secret(org, old_ca))
    plane = {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "DataPlane",
        "metadata": {"name": "dp", "namespace": org},
        "spec": {
            "planeID": f"dp-{org}",
            "gateway": {"publicVirtualHost": "dp.apps.example.com"},
            "clusterAgent": {"clientCA": {"secretKeyRef": {"name": "agent-ca", "key": "ca.crt"}}},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(plane))
    api = await FakeAPI().start()
    async with KubeClient.from_kubeconfig(str(cluster.kubeconfig), cluster.context) as kube:
        source = KubePlaneSource(kube, secret_poll=POLL)
        # Until the Secret names the new CA, the new agent fails the TLS handshake (no CR
        # names its CA yet) and keeps retrying; the rotation must also extend that trust.
        harness = await Harness(certs, gateway_config(certs), source).start()
        agent_kube = KubeClient(api.url, token="t")
        try:
            await wait_for(lambda: source.ready.is_set(), 30)
            ex = Executor(agent_kube, timeout=2.0)
            plane_id = plane["spec"]["planeID"]  # type: ignore[index]
            old = harness.start_agent(agent_config(harness.cfg, old_dir, plane_id), ex)
            new = harness.start_agent(agent_config(harness.cfg, new_dir, plane_id), ex)
            await wait_for(lambda: old.connected, 30)
            assert not new.connected

            cluster.kubectl("apply", "-f", "-", input=secret(org, new_ca))
            await wait_for(lambda: new.connected and not old.connected, 30)

            cluster.kubectl("apply", "-f", "-", input=secret(org, old_ca, new_ca))  # a bundle
            await wait_for(lambda: new.connected and old.connected, 30)
        finally:
            await harness.close()
            await agent_kube.aclose()
            await api.close()
