"""Plane registration, validation, Environments and unregistration against real clusters.

The agents do not run here (see test_e2e_* for that), so registrations do not wait for a
connection; what is checked is what lands in the control plane and what is refused.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from typing import Any

import pytest

from choreoctl import pki
from choreoctl.errors import ApiError, InputError
from choreoctl.planes.environments import apply_environment, ensure_environments
from choreoctl.planes.list import list_planes
from choreoctl.planes.register import register_plane
from choreoctl.planes.unregister import unregister_plane
from choreoctl.topology.model import Environment, PlaneKind
from choreoctl.trust.gateway_ca import ensure_trust
from tests.integration.test_trust_issuer import CHOREOCTL, lab  # noqa: F401

pytestmark = pytest.mark.cluster
API = "openchoreo.dev/v1alpha1"


async def _registered(lab_: Any) -> Any:
    topo, clients = lab_
    await ensure_trust(topo, clients, timeout=30)
    for kind in (PlaneKind.observability, PlaneKind.data):
        plane = topo.planes_of(kind)[0]
        await register_plane(topo, plane, clients, wait_connected=False, timeout=30)
    return topo, clients


async def test_register_writes_agent_ca_not_leaf(lab) -> None:  # noqa: F811
    topo, clients = await _registered(lab)
    org = topo.organization
    dp = await clients["alpha"].get(API, "DataPlane", "us", org)
    assert dp is not None
    dp_ns = topo.plane("us", PlaneKind.data).namespace
    secret = await clients["beta"].get("v1", "Secret", "cluster-agent-tls", dp_ns)
    assert secret is not None
    import base64

    agent_ca = base64.b64decode(secret["data"]["ca.crt"])
    leaf = base64.b64decode(secret["data"]["tls.crt"])
    value = dp["spec"]["clusterAgent"]["clientCA"]["value"].encode()
    assert pki.fingerprint(pki.load_certs(value)[0]) == pki.fingerprint(pki.load_certs(agent_ca)[0])
    assert pki.fingerprint(pki.load_certs(value)[0]) != pki.fingerprint(pki.load_certs(leaf)[0])
    assert dp["spec"]["planeID"] == "us"
    assert dp["spec"]["observabilityPlaneRef"] == "default"
    assert dp["spec"]["gateway"]["publicVirtualHost"] == topo.plane("us").public_virtual_host
    obs = await clients["alpha"].get(API, "ObservabilityPlane", "default", org)
    assert obs is not None and obs["spec"]["observerURL"] == "https://logs.example.com"
    assert await clients["alpha"].get(API, "Organization", org) is not None
    rows = await list_planes(clients["alpha"], org)
    assert {(r["type"], r["name"], r["connected"]) for r in rows} == {
        ("data", "us", False),
        ("observability", "default", False),
    }
    # registering again is a no-op
    before = dp["metadata"]["resourceVersion"]
    await register_plane(topo, topo.plane("us"), clients, wait_connected=False, timeout=30)
    again = await clients["alpha"].get(API, "DataPlane", "us", org)
    assert again is not None and again["metadata"]["resourceVersion"] == before


async def test_register_refuses_missing_observability_and_duplicate_host(lab) -> None:  # noqa: F811
    topo, clients = lab
    await ensure_trust(topo, clients, timeout=30)
    dp = topo.plane("us", PlaneKind.data)
    with pytest.raises(InputError) as err:
        await register_plane(topo, dp, clients, wait_connected=False, timeout=10)
    assert [p.path for p in err.value.problems] == ["observabilityPlaneRef"]
    await register_plane(
        topo, topo.plane("default", PlaneKind.observability), clients, wait_connected=False
    )
    await register_plane(topo, dp, clients, wait_connected=False, timeout=10)
    twin = dataclasses.replace(dp, name="us2", plane_id="us2")
    with pytest.raises(InputError) as err:
        await register_plane(topo, twin, clients, wait_connected=False, timeout=10)
    assert "already used by DataPlane 'us'" in err.value.problems[0].message
    assert await clients["alpha"].get(API, "DataPlane", "us2", topo.organization) is None


async def test_environments_immutable_data_plane_and_unregister_guard(lab) -> None:  # noqa: F811
    topo, clients = await _registered(lab)
    control, org = clients["alpha"], topo.organization
    await ensure_environments(topo, control)
    env = await control.get(API, "Environment", "dev", org)
    assert env is not None and env["spec"]["dataPlaneRef"] == "us"
    with pytest.raises(InputError) as err:
        await apply_environment(control, org, Environment("dev", "eu", "dev"))
    assert "dataPlaneRef is immutable" in err.value.problems[0].message
    # the API server's own rule says the same when someone bypasses choreoctl
    obj = dict(env)
    obj["spec"] = {**env["spec"], "dataPlaneRef": "other"}
    obj["metadata"] = {"name": "dev", "namespace": org}
    with pytest.raises(ApiError) as api_err:
        await control.apply(obj, force=True)
    assert api_err.value.status == 422 and "dataPlaneRef is immutable" in api_err.value.message
    with pytest.raises(InputError) as err:
        await unregister_plane(control, org, PlaneKind.data, "us")
    assert "Environment 'dev'" in err.value.problems[0].message
    assert await control.get(API, "DataPlane", "us", org) is not None
    assert await unregister_plane(control, org, PlaneKind.data, "us", force=True) is True
    assert await control.get(API, "DataPlane", "us", org) is None


def _cli(clusters: Any, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [CHOREOCTL, *args, "--kubeconfig", str(clusters["alpha"].kubeconfig)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


async def test_cli_plane_and_env_commands(lab, clusters: Any) -> None:  # noqa: F811
    topo, clients = lab
    await ensure_trust(topo, clients, timeout=30)
    org = topo.organization
    obs_ns = topo.plane("default", PlaneKind.observability).namespace
    dp_ns = topo.plane("us", PlaneKind.data).namespace
    common = ["--organization", org, "--context", "alpha"]
    out = _cli(
        clusters,
        "plane",
        "register",
        "--type",
        "observability",
        "--name",
        "default",
        "--cluster",
        "beta",
        "--namespace",
        obs_ns,
        "--observer-url",
        "https://observer.example.com",
        "--no-wait",
        "-o",
        "json",
        *common,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["kind"] == "ObservabilityPlane"
    register_us = [
        *("plane", "register", "--type", "data", "--name", "us", "--cluster", "beta"),
        *("--namespace", dp_ns, "--public-virtual-host", "x.example.com", "--no-wait"),
        *common,
    ]
    out = _cli(clusters, *register_us, "--observability-plane", "missing")
    assert out.returncode == 2 and "does not exist" in out.stderr, out.stderr
    out = _cli(clusters, *register_us, "--observability-plane", "default")
    assert out.returncode == 0, out.stderr
    out = _cli(clusters, "plane", "list", "-o", "json", *common)
    assert {r["name"] for r in json.loads(out.stdout)} == {"us", "default"}
    out = _cli(clusters, "env", "create", "qa", "--data-plane", "us", *common)
    assert out.returncode == 0, out.stderr
    out = _cli(clusters, "env", "create", "qa", "--data-plane", "eu", *common)
    assert out.returncode == 2 and "dataPlaneRef is immutable" in out.stderr
    out = _cli(clusters, "env", "list", "-o", "yaml", *common)
    assert "dataPlane: us" in out.stdout
    out = _cli(clusters, "plane", "unregister", "--type", "data", "--name", "us", *common)
    assert out.returncode == 2 and "qa" in out.stderr
    out = _cli(clusters, "env", "delete", "qa", *common)
    assert out.returncode == 0, out.stderr
    out = _cli(clusters, "plane", "unregister", "--type", "data", "--name", "us", *common)
    assert out.returncode == 0, out.stderr
