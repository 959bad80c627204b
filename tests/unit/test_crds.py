"""The openchoreo.dev CRDs: well-formed, structural, and matching the runtime contract."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.unit.crd_schema import crds, instance_errors, structural_problems, version_schema

PLANE_KINDS = ("DataPlane", "BuildPlane", "ObservabilityPlane")
ALL_KINDS = ("Organization", "Environment", *PLANE_KINDS)
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _prop(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = schema
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


def test_every_kind_is_packaged_once() -> None:
    assert sorted(crds()) == sorted(ALL_KINDS)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_crd_is_valid_apiextensions_v1(kind: str) -> None:
    crd = crds()[kind]
    kubernetes_validate.validate(crd, "1.32.0", strict=True)
    spec = crd["spec"]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert spec["group"] == "openchoreo.dev"
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.openchoreo.dev"
    assert spec["scope"] == ("Cluster" if kind == "Organization" else "Namespaced")
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_schema_is_structural(kind: str) -> None:
    assert structural_problems(version_schema(crds()[kind])) == []


def test_structural_check_catches_a_bad_schema() -> None:
    bad = {
        "type": "object",
        "properties": {
            "spec": {"properties": {"x": {"type": "array"}}, "required": ["y"]},
            "status": {"type": "object", "$ref": "#/definitions/s"},
        },
    }
    problems = structural_problems(bad)
    assert any(p.startswith(".spec: no type") for p in problems)
    assert any("array without items" in p for p in problems)
    assert any("required 'y'" in p for p in problems)
    assert any("$ref" in p for p in problems)


def test_environment_data_plane_ref_is_immutable_by_cel() -> None:
    schema = version_schema(crds()["Environment"])
    field = _prop(schema, "spec.dataPlaneRef")
    assert {"rule": "self == oldSelf", "message": "dataPlaneRef is immutable"} in field[
        "x-kubernetes-validations"
    ]
    # Removing it is refused too (a transition rule on the field alone would not fire).
    spec_rules = _prop(schema, "spec")["x-kubernetes-validations"]
    assert any("oldSelf.dataPlaneRef" in r["rule"] for r in spec_rules)
    assert _prop(schema, "spec.gateway.dnsPrefix")["type"] == "string"
    assert _prop(schema, "spec.isProduction")["type"] == "boolean"


@pytest.mark.parametrize("kind", PLANE_KINDS)
def test_plane_printer_columns(kind: str) -> None:
    (version,) = crds()[kind]["spec"]["versions"]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["PlaneID", "Connected", "Agents", "Age"]
    assert columns["PlaneID"]["jsonPath"] == ".spec.planeID"
    assert columns["Connected"]["jsonPath"] == ".status.agentConnection.connected"
    assert columns["Agents"]["jsonPath"] == ".status.agentConnection.connectedAgents"
    assert columns["Age"] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    }
    schema = version_schema(crds()[kind])
    for col in columns.values():  # every column points at a field the schema declares
        path = col["jsonPath"].lstrip(".")
        if not path.startswith("metadata"):
            _prop(schema, path)


@pytest.mark.parametrize("kind", PLANE_KINDS)
def test_plane_contract_fields(kind: str) -> None:
    schema = version_schema(crds()[kind])
    client_ca = _prop(schema, "spec.clusterAgent.clientCA")
    assert set(client_ca["properties"]) == {"value", "secretKeyRef"}
    assert set(client_ca["properties"]["secretKeyRef"]["properties"]) == {
        "name",
        "key",
        "namespace",
    }
    assert any(
        "has(self.value) != has(self.secretKeyRef)" in r["rule"]
        for r in client_ca["x-kubernetes-validations"]
    )
    _prop(schema, "spec.planeID")
    conn = _prop(schema, "status.agentConnection")
    assert set(conn["properties"]) == {
        "connected",
        "connectedAgents",
        "lastConnectedTime",
        "lastDisconnectedTime",
        "lastHeartbeatTime",
        "message",
    }
    conditions = _prop(schema, "status.conditions")
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {
        "type",
        "status",
        "lastTransitionTime",
        "reason",
        "message",
    }
    specific = {
        "DataPlane": {"gateway", "observabilityPlaneRef", "secretStoreRef"},
        "BuildPlane": {"observabilityPlaneRef"},
        "ObservabilityPlane": {"observerURL"},
    }[kind]
    assert specific <= set(_prop(schema, "spec")["properties"])
    if kind == "DataPlane":
        _prop(schema, "spec.gateway.publicVirtualHost")
    if kind == "ObservabilityPlane":
        assert "observerURL" in _prop(schema, "spec")["required"]


def _plane(kind: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "us", "namespace": "default-organization"},
        "spec": {"planeID": "us", "clusterAgent": {"clientCA": {"value": PEM}}, **spec},
    }


VALID = [
    _plane(
        "DataPlane",
        gateway={"publicVirtualHost": "us.apps.example.com"},
        observabilityPlaneRef="default",
        secretStoreRef={"name": "default"},
    ),
    _plane("BuildPlane", observabilityPlaneRef="default"),
    _plane("ObservabilityPlane", observerURL="http://observer.obs.svc.cluster.local:8080"),
    {
        **_plane("DataPlane", gateway={"publicVirtualHost": "eu.apps.example.com"}),
        "status": {
            "agentConnection": {
                "connected": True,
                "connectedAgents": 2,
                "lastHeartbeatTime": "2026-01-01T00:00:00Z",
            },
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "AgentConnected",
                    "message": "2 agents",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        },
    },
]


@pytest.mark.parametrize("obj", VALID, ids=lambda o: o["kind"])
def test_valid_plane_objects_pass(obj: dict[str, Any]) -> None:
    assert instance_errors(obj, crds()[obj["kind"]]) == []


INVALID = [
    ("ObservabilityPlane", _plane("ObservabilityPlane"), "'observerURL' is a required property"),
    ("DataPlane", _plane("DataPlane"), "'gateway' is a required property"),
    (
        "DataPlane",
        _plane("DataPlane", gateway={"publicVirtualHost": "US_apps"}),
        "does not match",
    ),
    (
        "BuildPlane",
        {**_plane("BuildPlane"), "spec": {"planeID": "Bad ID", "clusterAgent": {"clientCA": {}}}},
        "does not match",
    ),
    ("BuildPlane", _plane("BuildPlane", unknownField=1), "Additional properties"),
    (
        "DataPlane",
        {
            **_plane("DataPlane", gateway={"publicVirtualHost": "a.example.com"}),
            "status": {"conditions": [{"type": "Ready", "status": "Maybe"}]},
        },
        "'Maybe' is not one of",
    ),
]


@pytest.mark.parametrize(("kind", "obj", "message"), INVALID)
def test_invalid_plane_objects_fail(kind: str, obj: dict[str, Any], message: str) -> None:
    errors = instance_errors(obj, crds()[kind])
    assert any(message in e for e in errors), errors
