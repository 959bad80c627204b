"""What ``install`` would change, per object: server-side dry-run apply vs the live object.

The server computes the result (defaults, admission, field ownership), so the diff shows
exactly what an apply would write, not a guess from the manifests. Server-owned fields
(status, managedFields, resourceVersion …) are stripped from both sides.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from choreoctl.errors import ApiError, ApplyConflict
from choreoctl.install.apply import FIELD_MANAGER
from choreoctl.install.inventory import InstallRecord
from choreoctl.install.manifests import Rendered
from choreoctl.install.objects import Obj, ObjectRef, strip_server_fields
from choreoctl.kube.client import KubeClient


@dataclass(frozen=True)
class ObjectDiff:
    """One object: ``create``, ``update``, ``unchanged``, ``conflict`` or ``prune``."""

    cluster: str
    ref: ObjectRef
    action: str
    diff: str = ""  # unified diff of the YAML, for update and create
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``-o json``."""
        return {
            "cluster": self.cluster,
            **self.ref.as_dict(),
            "action": self.action,
            "diff": self.diff,
            "note": self.note,
        }


def _yaml(obj: Obj | None) -> list[str]:
    import yaml

    if obj is None:
        return []
    text = yaml.safe_dump(strip_server_fields(obj), sort_keys=True, default_flow_style=False)
    return text.splitlines(keepends=True)


def unified(cluster: str, ref: ObjectRef, live: Obj | None, want: Obj | None) -> str:
    """The unified diff between two objects (server fields stripped)."""
    name = f"{cluster}/{ref}"
    lines = difflib.unified_diff(
        _yaml(live), _yaml(want), fromfile=f"live {name}", tofile=f"install {name}"
    )
    return "".join(lines)


async def _one(client: KubeClient, cluster: str, obj: Obj, force: bool) -> ObjectDiff:
    ref = ObjectRef.of(obj)
    try:
        live = await client.get(ref.api_version, ref.kind, ref.name, ref.namespace or None)
    except ApiError as e:
        if e.status != 404:
            raise
        return ObjectDiff(
            cluster,
            ref,
            "create",
            unified(cluster, ref, None, obj),
            "its kind is not served yet (the install creates the CRD)",
        )
    try:
        want = await client.apply(obj, FIELD_MANAGER, force=force, dry_run=True)
    except ApplyConflict as e:
        fields = "; ".join(p.line() for p in e.problems) or e.message
        return ObjectDiff(cluster, ref, "conflict", "", fields)
    except ApiError as e:
        if live is None and e.status == 404:
            return ObjectDiff(
                cluster,
                ref,
                "create",
                unified(cluster, ref, None, obj),
                "its namespace does not exist yet (the install creates it)",
            )
        raise
    if live is None:
        return ObjectDiff(cluster, ref, "create", unified(cluster, ref, None, want))
    text = unified(cluster, ref, live, want)
    return ObjectDiff(cluster, ref, "update" if text else "unchanged", text)


async def run_diff(
    rendered: Rendered,
    clients: Mapping[str, KubeClient],
    *,
    record: InstallRecord | None = None,
    force_conflicts: bool = False,
    concurrency: int = 16,
) -> list[ObjectDiff]:
    """Every rendered object's diff, plus recorded objects the render no longer has."""
    gate = asyncio.Semaphore(concurrency)

    async def bounded(cluster: str, obj: Obj) -> ObjectDiff:
        async with gate:
            return await _one(clients[cluster], cluster, obj, force_conflicts)

    jobs = [bounded(ps.cluster, o) for ps in rendered.planes for o in ps.objects]
    out = list(await asyncio.gather(*jobs))
    if record is not None:
        wanted = {(c, r) for c, refs in rendered.refs().items() for r in refs}
        for cluster, entries in record.inventory().items():
            for e in entries:
                if e.created and e.origin == "apply" and (cluster, e.ref) not in wanted:
                    out.append(
                        ObjectDiff(
                            cluster, e.ref, "prune", "", "no longer rendered: upgrade deletes it"
                        )
                    )
    return out
