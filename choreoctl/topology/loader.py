"""Load a topology: built-in name or file, ``-f``/``--set`` overrides, full validation.

This is the one entry point the rest of choreoctl uses::

    topology = load_topology("multi-region", values_files=["prod.yaml"],
                             sets=["spec.planes.data[0].publicVirtualHost=us.example.com"])

Every problem (YAML, types, unknown fields, cross-field rules) is collected and raised
at once as a :class:`~choreoctl.errors.TopologyError` whose ``problems`` carry
``file:line:column``, the field path, what was expected and a hint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from choreoctl.errors import Problem, TopologyError
from choreoctl.topology import checks, defaults
from choreoctl.topology.builtin import builtin_names, builtin_path
from choreoctl.topology.fields import Reader
from choreoctl.topology.model import TLS, Component, Plane, PlaneKind, Topology
from choreoctl.topology.overrides import apply_set, merge_values
from choreoctl.topology.rules import check_all
from choreoctl.topology.schema import Parsed, parse_topology
from choreoctl.topology.yamlsource import load_file

__all__ = [
    "builtin_names",
    "builtin_path",
    "load_parsed",
    "load_topology",
    "resolve_ref",
    "topology_to_dict",
]


def resolve_ref(ref: str) -> str:
    """The file behind ``ref``: a built-in name or a path (which must exist)."""
    if ref in builtin_names():
        return str(builtin_path(ref))
    if not os.path.lexists(ref):
        names = builtin_names()
        raise TopologyError(
            f"topology {ref!r} is neither a file nor a built-in topology",
            hint=f"{checks.did_you_mean(ref, names)} (see `choreoctl topology list`)",
            problems=(Problem("no such file", where=ref),),
        )
    return ref


def load_parsed(ref: str, values_files: Sequence[str] = (), sets: Sequence[str] = ()) -> Parsed:
    """Like :func:`load_topology`, also returning where each plane sits in the document."""
    path = resolve_ref(ref)
    doc = load_file(path)
    for values in values_files:
        if not isinstance(doc.data, dict):
            break  # reported below as a wrong root type
        merge_values(doc, load_file(values))
    for expr in sets:
        if isinstance(doc.data, dict):
            apply_set(doc, expr)
    reader = Reader(doc)
    parsed = parse_topology(reader, ref, os.path.dirname(os.path.abspath(path)))
    # Rules run even after schema problems so every problem shows at once; values
    # already reported are skipped by the reader's cascade guard.
    check_all(reader, parsed)
    if reader.problems:
        problems = _sorted(reader.problems)
        if reader.truncated:
            problems += (Problem(f"stopped after {len(problems)} problems", where=path),)
        raise TopologyError(
            f"topology {ref} is invalid: {len(problems)} problem(s)",
            hint="fix the fields above; `choreoctl topology validate` checks again",
            problems=problems,
        )
    return parsed


def load_topology(ref: str, values_files: Sequence[str] = (), sets: Sequence[str] = ()) -> Topology:
    """Load, override and validate a topology; TopologyError lists every problem."""
    return load_parsed(ref, values_files, sets).topology


def _sorted(problems: Sequence[Problem]) -> tuple[Problem, ...]:
    """Problems by file (in order of first appearance), then line and column."""
    files: dict[str, int] = {}

    def key(p: Problem) -> tuple[int, int, int]:
        name, _, rest = p.where.partition(":")
        line, _, col = rest.partition(":")
        order = files.setdefault(name, len(files))
        return (order, int(line) if line.isdigit() else 0, int(col) if col.isdigit() else 0)

    for p in problems:
        key(p)
    return tuple(sorted(problems, key=key))


def topology_to_dict(t: Topology) -> dict[str, Any]:
    """The normalised document, every default filled in; loading it gives ``t`` back."""
    planes: dict[str, Any] = {}
    for plane in t.planes:
        key = plane.kind.name
        if plane.kind is PlaneKind.data:
            planes.setdefault(key, []).append(_plane(plane))
        else:
            planes[key] = _plane(plane)
    spec: dict[str, Any] = {
        "type": t.type.value,
        "clusters": [
            _drop_empty({"name": c.name, "context": c.context, "region": c.region})
            for c in t.clusters
        ],
        "organization": {
            "name": t.organization,
            "environments": [
                {
                    "name": e.name,
                    "dataPlane": e.data_plane,
                    "dnsPrefix": e.dns_prefix,
                    "isProduction": e.is_production,
                }
                for e in t.environments
            ],
        },
        "images": _drop_empty(
            {
                "registry": t.images.registry,
                "pullSecrets": list(t.images.pull_secrets),
                "tag": t.images.tag,
                "digests": dict(t.images.digests),
            }
        ),
        "gateway": _drop_empty(
            {
                "port": t.gateway.port,
                "internalPort": t.gateway.internal_port,
                "healthPort": t.gateway.health_port,
                "externalHost": t.gateway.external_host,
                "extraSANs": list(t.gateway.extra_sans),
            }
        ),
        "trust": {"issuer": t.trust_issuer.value},
        "loadBalancer": {"mode": t.load_balancer_mode.value},
        "planes": planes,
    }
    return {
        "apiVersion": defaults.API_VERSION,
        "kind": defaults.KIND,
        "metadata": {"name": t.name},
        "spec": spec,
    }


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in ("", [], {}, None)}


def _plane(p: Plane) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": p.name,
        "cluster": p.cluster,
        "namespace": p.namespace,
        "planeID": p.plane_id,
    }
    if p.kind is not PlaneKind.build:
        out["domains"] = dict(p.domains)
        out["tls"] = _tls(p.tls)
        out["loadBalancer"] = _drop_empty(
            {
                "address": p.load_balancer.address,
                "ports": {"https": p.load_balancer.ports.https, "http": p.load_balancer.ports.http},
            }
        )
    if p.kind is PlaneKind.data:
        out["publicVirtualHost"] = p.public_virtual_host
        out["secretStore"] = p.secret_store
    if p.kind in (PlaneKind.data, PlaneKind.build):
        out["observabilityPlane"] = p.observability_plane
    storage_only = {c.name for c in defaults.COMPONENTS[p.kind] if c.replicas == 0 and c.storage}
    out["components"] = {c.name: _component(c, c.name in storage_only) for c in p.components}
    return _drop_empty(out)


def _tls(tls: TLS) -> dict[str, Any]:
    out: dict[str, Any] = {"issuer": tls.issuer.value}
    if tls.issuer_ref is not None:
        ref = tls.issuer_ref
        out["issuerRef"] = {"name": ref.name, "kind": ref.kind, "group": ref.group}
    out |= {
        "secretName": tls.secret_name,
        "certFile": tls.cert_file,
        "keyFile": tls.key_file,
        "caFile": tls.ca_file,
    }
    return _drop_empty(out)


def _component(c: Component, storage_only: bool) -> dict[str, Any]:
    if storage_only:
        return {"storage": c.storage}  # storage only: no pod of its own
    out: dict[str, Any] = {
        "replicas": c.replicas,
        "resources": {
            "requests": {"cpu": c.resources.cpu_request, "memory": c.resources.memory_request},
            "limits": {"cpu": c.resources.cpu_limit, "memory": c.resources.memory_limit},
        },
    }
    if c.storage:
        out["storage"] = c.storage
    return out
