"""Helpers for checking CRD schemas and validating objects against them, offline.

The API server's structural-schema rules and its field validation are reproduced here
far enough to catch chart and CRD mistakes in unit tests; CEL rules cannot be evaluated
in Python and are exercised against a real API server in tests/integration.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import jsonschema

from choreoctl.render.charts import crd_files
from choreoctl.render.manifests import split_documents

# Keys a structural schema node may carry (apiextensions v1 JSONSchemaProps that make sense
# in a structural schema; $ref, definitions, dependencies, id and patternProperties are not).
ALLOWED_KEYS = {
    "type",
    "format",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "default",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "nullable",
    "additionalProperties",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-map-type",
}


def crds() -> dict[str, dict[str, Any]]:
    """The packaged CRDs by kind."""
    found: dict[str, dict[str, Any]] = {}
    for name, text in crd_files():
        for m in split_documents(text, name):
            found[m.obj["spec"]["names"]["kind"]] = m.obj
    return found


def version_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The openAPIV3Schema of the CRD's only version."""
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its dotted path."""
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def structural_problems(schema: dict[str, Any]) -> list[str]:
    """Violations of the structural-schema rules the API server enforces."""
    problems: list[str] = []
    for path, node in walk(schema):
        unknown = set(node) - ALLOWED_KEYS
        if unknown:
            problems.append(f"{path or '<root>'}: keys not allowed: {sorted(unknown)}")
        escape = node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        if "type" not in node and not escape:
            problems.append(f"{path or '<root>'}: no type")
        if node.get("type") == "array" and "items" not in node:
            problems.append(f"{path}: array without items")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: properties and additionalProperties together")
        for req in node.get("required", []):
            if req not in node.get("properties", {}):
                problems.append(f"{path}: required {req!r} is not a property")
        if node.get("x-kubernetes-list-type") == "map":
            item = node.get("items", {})
            for key in node.get("x-kubernetes-list-map-keys", []):
                if key not in item.get("required", []):
                    problems.append(f"{path}: list map key {key!r} must be required")
    meta = schema.get("properties", {}).get("metadata", {})
    if set(meta.get("properties", {})) - {"name", "generateName"}:
        problems.append("metadata: only name and generateName may be constrained")
    return problems


def _strict(node: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema that, like ``kubectl --validate=strict``, rejects unknown fields."""
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-")}
    out.pop("format", None)  # date-time etc. are not what these tests are about
    if "properties" in out:
        out["properties"] = {k: _strict(v) for k, v in out["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(out.get("items"), dict):
        out["items"] = _strict(out["items"])
    return out


def instance_errors(obj: dict[str, Any], crd: dict[str, Any]) -> list[str]:
    """Schema errors of ``obj`` against ``crd`` (strict field validation), as text."""
    schema = _strict(copy.deepcopy(version_schema(crd)))
    # The API server validates metadata itself; the CRD schema only narrows the name.
    schema["properties"]["metadata"] = {"type": "object"}
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in validator.iter_errors(obj)
    ]
