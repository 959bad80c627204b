"""``plane unregister``: remove a plane CR, refusing while Environments still use it."""

from __future__ import annotations

from choreoctl.errors import InputError, Problem
from choreoctl.kube.client import KubeClient
from choreoctl.planes.crs import API_VERSION, KINDS
from choreoctl.topology.model import PlaneKind


async def unregister_plane(
    control: KubeClient, namespace: str, kind: PlaneKind, name: str, *, force: bool = False
) -> bool:
    """Delete the plane CR; False when it did not exist.

    A DataPlane that Environments reference is refused unless ``force`` (their
    dataPlaneRef is immutable, so they would point at nothing until deleted).
    """
    cr_kind = KINDS[kind]
    if kind is PlaneKind.data and not force:
        envs = await control.list(API_VERSION, "Environment", namespace)
        users = [
            e["metadata"]["name"] for e in envs if (e.get("spec") or {}).get("dataPlaneRef") == name
        ]
        if users:
            raise InputError(
                f"DataPlane {name!r} is used by {len(users)} Environment(s): "
                + ", ".join(sorted(users)),
                hint="delete those environments first (`choreoctl env delete NAME`), "
                "or pass --force to unregister anyway",
                problems=tuple(
                    Problem(f"Environment {u!r} has dataPlaneRef {name!r}") for u in users
                ),
            )
    if kind in (PlaneKind.observability,) and not force:
        refs = []
        for k in (PlaneKind.data, PlaneKind.build):
            for o in await control.list(API_VERSION, KINDS[k], namespace):
                if (o.get("spec") or {}).get("observabilityPlaneRef") == name:
                    refs.append(f"{KINDS[k]} {o['metadata']['name']!r}")
        if refs:
            raise InputError(
                f"ObservabilityPlane {name!r} is referenced by " + ", ".join(refs),
                hint="unregister or update those planes first, or pass --force",
            )
    return await control.delete(API_VERSION, cr_kind, name, namespace)
