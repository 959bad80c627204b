"""What registration writes and refuses, without a cluster."""

from __future__ import annotations

from choreoctl import pki
from choreoctl.planes.crs import observer_url, plane_cr, validate_names
from choreoctl.planes.environments import environment_cr, environment_row, immutable_problem
from choreoctl.planes.list import plane_row
from choreoctl.topology.model import (
    Cluster,
    Environment,
    Plane,
    PlaneKind,
    Topology,
    TopologyType,
)

CONTROL = Plane(PlaneKind.control, "cp", "ctl", "cp-ns")
US = Plane(
    PlaneKind.data,
    "us",
    "us",
    "dp-ns",
    public_virtual_host="us.apps.example.com",
    observability_plane="default",
    secret_store="vault",
)
OBS_LOCAL = Plane(PlaneKind.observability, "default", "ctl", "obs-ns")
OBS_REMOTE = Plane(
    PlaneKind.observability, "far", "us", "obs-ns", domains={"ingestion": "logs.example.com"}
)


def topo(*planes: Plane) -> Topology:
    return Topology(
        name="t",
        type=TopologyType.multi_cluster,
        clusters=(Cluster("ctl", "ctl"), Cluster("us", "us")),
        planes=(CONTROL, *planes),
        organization="acme",
    )


def test_data_plane_cr_carries_ca_references_and_gateway() -> None:
    ca = pki.make_ca("agents").cert_pem.decode()
    obj = plane_cr(topo(US), US, ca)
    assert obj["kind"] == "DataPlane"
    assert obj["metadata"]["namespace"] == "acme"
    assert obj["metadata"]["labels"]["openchoreo.dev/cluster"] == "us"
    assert obj["spec"] == {
        "planeID": "us",
        "clusterAgent": {"clientCA": {"value": ca}},
        "gateway": {"publicVirtualHost": "us.apps.example.com"},
        "secretStoreRef": {"name": "vault"},
        "observabilityPlaneRef": "default",
    }


def test_build_plane_has_no_gateway_and_plane_id_override() -> None:
    bp = Plane(PlaneKind.build, "default", "us", "bp-ns", plane_id="build-1")
    obj = plane_cr(topo(bp), bp, "x")
    assert obj["kind"] == "BuildPlane"
    assert obj["spec"]["planeID"] == "build-1"
    assert "gateway" not in obj["spec"]


def test_observer_url_local_service_or_remote_domain() -> None:
    assert observer_url(topo(OBS_LOCAL), OBS_LOCAL) == (
        "http://observer.obs-ns.svc.cluster.local:8080"
    )
    assert observer_url(topo(OBS_REMOTE), OBS_REMOTE) == "https://logs.example.com"
    obj = plane_cr(topo(OBS_REMOTE), OBS_REMOTE, "x")
    assert obj["kind"] == "ObservabilityPlane"
    assert obj["spec"]["observerURL"] == "https://logs.example.com"


def test_validate_names_reports_each_bad_field() -> None:
    bad = Plane(PlaneKind.data, "Bad_Name", "us", "ns", public_virtual_host="Not A Host")
    paths = [p.path for p in validate_names(bad)]
    assert paths == ["name", "planeID", "publicVirtualHost"]
    nohost = Plane(PlaneKind.data, "ok", "us", "ns")
    assert [p.path for p in validate_names(nohost)] == ["publicVirtualHost"]
    assert validate_names(US) == []


def test_environment_cr_and_immutable_refusal() -> None:
    env = Environment("dev", "us", "dev")
    obj = environment_cr("acme", env)
    assert obj["spec"] == {
        "dataPlaneRef": "us",
        "isProduction": False,
        "gateway": {"dnsPrefix": "dev"},
    }
    assert immutable_problem(env, None) is None
    assert immutable_problem(env, obj) is None
    moved = Environment("dev", "eu", "dev")
    problem = immutable_problem(moved, obj)
    assert problem is not None
    assert "dataPlaneRef is immutable" in problem.message
    assert "env delete dev" in problem.hint


def test_rows_for_lists() -> None:
    ca = pki.make_ca("agents")
    obj = plane_cr(topo(US), US, ca.cert_pem.decode())
    obj["status"] = {
        "agentConnection": {
            "connected": True,
            "connectedAgents": 2,
            "lastHeartbeatTime": "2026-01-01T00:00:00Z",
        }
    }
    row = plane_row(obj)
    assert row["type"] == "data" and row["connected"] and row["agents"] == 2
    assert row["cluster"] == "us"
    assert row["caExpiry"] == pki.not_after(ca.cert).strftime("%Y-%m-%dT%H:%M:%SZ")
    env = environment_cr("acme", Environment("prod", "us", "prod", True))
    env["status"] = {"conditions": [{"type": "Ready", "status": "False", "reason": "NoPlane"}]}
    assert environment_row(env) == {
        "name": "prod",
        "dataPlane": "us",
        "dnsPrefix": "prod",
        "production": True,
        "ready": "False",
        "reason": "NoPlane",
    }
