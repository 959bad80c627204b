"""Environments: named stages, each bound for good to one data plane.

``dataPlaneRef`` is immutable (the CRD's CEL rule ``self == oldSelf``); choreoctl checks
it before writing so the refusal names the environment, both data planes and the way
out (delete and re-create), instead of surfacing a bare 422 from the API server.
"""

from __future__ import annotations

from typing import Any

from choreoctl.errors import ApiError, InputError, Problem
from choreoctl.kube.client import KubeClient, Obj
from choreoctl.planes.crs import API_VERSION, KINDS, LABELS, org_namespace
from choreoctl.topology.model import Environment, PlaneKind, Topology

KIND = "Environment"


def environment_cr(namespace: str, env: Environment) -> Obj:
    """The Environment CR for ``env`` in the organization namespace."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": env.name, "namespace": namespace, "labels": dict(LABELS)},
        "spec": {
            "dataPlaneRef": env.data_plane,
            "isProduction": env.is_production,
            "gateway": {"dnsPrefix": env.dns_prefix},
        },
    }


def immutable_problem(env: Environment, live: Obj | None) -> Problem | None:
    """The refusal when ``env`` would change an existing Environment's data plane."""
    current = ((live or {}).get("spec") or {}).get("dataPlaneRef")
    if current and current != env.data_plane:
        return Problem(
            f"Environment {env.name!r} is bound to DataPlane {current!r}; "
            f"it cannot move to {env.data_plane!r}: dataPlaneRef is immutable",
            path=f"environments.{env.name}.dataPlane",
            hint=f"delete it (`choreoctl env delete {env.name}`) and create it again, "
            "or create a new environment for the other data plane",
        )
    return None


async def apply_environment(control: KubeClient, namespace: str, env: Environment) -> Obj:
    """Create or update one Environment after the immutability and reference checks."""
    problems: list[Problem] = []
    live = await control.get(API_VERSION, KIND, env.name, namespace)
    if (p := immutable_problem(env, live)) is not None:
        problems.append(p)
    if await control.get(API_VERSION, KINDS[PlaneKind.data], env.data_plane, namespace) is None:
        problems.append(
            Problem(
                f"DataPlane {env.data_plane!r} does not exist in namespace {namespace}",
                path=f"environments.{env.name}.dataPlane",
                hint="register the data plane first (`choreoctl plane register --type data`)",
            )
        )
    if problems:
        raise InputError(
            f"cannot apply Environment {env.name!r}",
            hint=problems[0].hint,
            problems=tuple(problems),
        )
    try:
        return await control.apply(environment_cr(namespace, env))
    except ApiError as e:
        if e.status == 422:
            raise InputError(
                f"the API server rejected Environment {env.name!r}: {e.message}",
                hint="dataPlaneRef is immutable: delete and re-create the environment",
            ) from e
        raise


async def ensure_environments(topology: Topology, control: KubeClient) -> None:
    """Every Environment of the topology, in the organization namespace of ``control``."""
    ns = org_namespace(topology)
    for env in topology.environments:
        await apply_environment(control, ns, env)


def environment_row(obj: Obj) -> dict[str, Any]:
    """An Environment CR as a row for ``env list``."""
    spec = obj.get("spec") or {}
    conds = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions", [])}
    ready = conds.get("Ready", {})
    return {
        "name": obj["metadata"]["name"],
        "dataPlane": spec.get("dataPlaneRef", ""),
        "dnsPrefix": (spec.get("gateway") or {}).get("dnsPrefix", ""),
        "production": bool(spec.get("isProduction")),
        "ready": ready.get("status", "Unknown"),
        "reason": ready.get("reason", ""),
    }


async def list_environments(control: KubeClient, namespace: str) -> list[dict[str, Any]]:
    """Rows of every Environment in the organization namespace, by name."""
    items = await control.list(API_VERSION, KIND, namespace)
    return sorted((environment_row(o) for o in items), key=lambda r: str(r["name"]))


async def delete_environment(control: KubeClient, namespace: str, name: str) -> bool:
    """Delete an Environment; False when there was none."""
    return await control.delete(API_VERSION, KIND, name, namespace)
