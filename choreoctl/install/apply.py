"""Ordered server-side apply of a manifest set into one cluster.

Namespaces and CRDs go first and CRDs must be Established before objects of their
kinds are sent; then the rest is applied concurrently (bounded), because one PATCH per
object in sequence is what makes ``kubectl apply`` slow on a high-latency API server.
Every conflict of the set is collected and reported at once, naming the object, the
other field manager and the field, so one re-run with ``--force-conflicts`` settles it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from choreoctl.errors import ApiError, ApplyConflict, Problem
from choreoctl.install.objects import FOUNDATION_KINDS, Obj, ObjectRef
from choreoctl.install.waits import wait_objects
from choreoctl.kube.client import KubeClient

FIELD_MANAGER = "choreoctl"
DEFAULT_CONCURRENCY = 16


@dataclass(frozen=True)
class Applied:
    """What the server answered for one applied object."""

    ref: ObjectRef
    uid: str = ""
    created_at: str = ""  # metadata.creationTimestamp, RFC 3339, server clock
    resource_version: str = ""
    skipped: str = ""  # dry run only: why the object could not be checked yet
    created_now: bool = False  # this very apply created it (HTTP 201)
    live: Obj | None = field(default=None, compare=False, repr=False)  # the server's answer

    @classmethod
    def of(cls, ref: ObjectRef, live: Obj, created_now: bool = False) -> Applied:
        """From the object the server returned."""
        meta = live.get("metadata") or {}
        return cls(
            ref,
            str(meta.get("uid", "")),
            str(meta.get("creationTimestamp", "")),
            str(meta.get("resourceVersion", "")),
            created_now=created_now,
            live=live,
        )


def _conflict_problems(ref: ObjectRef, err: ApplyConflict) -> list[Problem]:
    lines = [p.line() for p in err.problems] or [err.message]
    return [Problem(line, where=str(ref)) for line in lines]


async def _apply_all(
    client: KubeClient,
    objs: Sequence[Obj],
    *,
    force: bool,
    dry_run: bool,
    concurrency: int,
    skip: Callable[[ObjectRef], str],
) -> list[Applied]:
    """Apply ``objs`` concurrently; collect conflicts of the whole batch into one error."""
    gate = asyncio.Semaphore(concurrency)

    async def one(obj: Obj) -> Applied:
        ref = ObjectRef.of(obj)
        reason = skip(ref)
        if reason:
            return Applied(ref, skipped=reason)
        async with gate:
            live, created = await client.apply_created(
                obj, FIELD_MANAGER, force=force, dry_run=dry_run
            )
        return Applied.of(ref, live, created and not dry_run)

    results = await asyncio.gather(*(one(o) for o in objs), return_exceptions=True)
    conflicts: list[Problem] = []
    applied: list[Applied] = []
    for obj, res in zip(objs, results, strict=True):
        if isinstance(res, ApplyConflict):
            conflicts.extend(_conflict_problems(ObjectRef.of(obj), res))
        elif isinstance(res, BaseException):
            raise res
        else:
            applied.append(res)
    if conflicts:
        raise ApplyConflict(
            f"{client.name}: {len(conflicts)} field(s) owned by another field manager",
            hint="another tool or person changed these fields; re-run with --force-conflicts "
            "to take them over for choreoctl, or change the topology to match",
            status=409,
            reason="Conflict",
            problems=tuple(conflicts),
        )
    return applied


async def _missing_namespaces(client: KubeClient, names: set[str]) -> set[str]:
    async def absent(name: str) -> bool:
        return await client.get("v1", "Namespace", name) is None

    found = await asyncio.gather(*(absent(n) for n in sorted(names)))
    return {n for n, gone in zip(sorted(names), found, strict=True) if gone}


async def _unserved(client: KubeClient, refs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for api_version, kind in sorted(refs):
        try:
            await client.resource(api_version, kind)
        except ApiError as e:
            if e.status != 404:
                raise
            out.add((api_version, kind))
    return out


def _crd_kinds(objs: Sequence[Obj]) -> set[tuple[str, str]]:
    kinds: set[tuple[str, str]] = set()
    for obj in objs:
        if obj.get("kind") != "CustomResourceDefinition":
            continue
        spec = obj.get("spec") or {}
        for version in spec.get("versions") or []:
            kinds.add((f"{spec['group']}/{version['name']}", spec["names"]["kind"]))
    return kinds


async def apply_set(
    client: KubeClient,
    objs: Sequence[Obj],
    *,
    force: bool = False,
    dry_run: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    crd_timeout: float = 60.0,
) -> list[Applied]:
    """Server-side apply ``objs`` (field manager ``choreoctl``) in dependency order.

    In a dry run nothing is persisted; objects that cannot be checked because their
    Namespace or CRD would only be created by this set come back with ``skipped`` set.
    """
    foundation = [o for o in objs if o.get("kind") in FOUNDATION_KINDS]
    rest = [o for o in objs if o.get("kind") not in FOUNDATION_KINDS]
    new_namespaces: set[str] = set()
    new_kinds: set[tuple[str, str]] = set()
    if dry_run:
        declared = {ObjectRef.of(o).name for o in foundation if o.get("kind") == "Namespace"}
        new_namespaces = await _missing_namespaces(client, declared)
        new_kinds = await _unserved(client, _crd_kinds(foundation))

    def skip(ref: ObjectRef) -> str:
        if ref.namespace in new_namespaces:
            return f"namespace {ref.namespace} does not exist yet (this install creates it)"
        if (ref.api_version, ref.kind) in new_kinds:
            return f"kind {ref.kind} is served only once this install's CRD exists"
        return ""

    done = await _apply_all(
        client, foundation, force=force, dry_run=dry_run, concurrency=concurrency, skip=skip
    )
    crds = [o for o in foundation if o.get("kind") == "CustomResourceDefinition"]
    if crds and not dry_run:
        await wait_objects(client, crds, timeout=crd_timeout)
    done += await _apply_all(
        client, rest, force=force, dry_run=dry_run, concurrency=concurrency, skip=skip
    )
    return done


async def unserved_kinds(client: KubeClient, objs: Sequence[Obj]) -> list[tuple[str, str]]:
    """(apiVersion, kind) of ``objs`` the server does not serve and no CRD in ``objs``
    provides: found before the first write, not halfway through an install."""
    needed = {(str(o["apiVersion"]), str(o["kind"])) for o in objs} - _crd_kinds(objs)
    return sorted(await _unserved(client, needed))


async def current_objects(client: KubeClient, objs: Sequence[Obj]) -> dict[ObjectRef, Obj]:
    """The live objects behind ``objs``: one LIST per kind and namespace (one GET per
    cluster-scoped object), far cheaper than re-applying to find out nothing changed."""
    refs = [ObjectRef.of(o) for o in objs]
    groups = sorted({(r.api_version, r.kind, r.namespace) for r in refs if r.namespace})
    wanted = set(refs)

    async def listed(api_version: str, kind: str, namespace: str) -> list[Obj]:
        try:
            items = await client.list(api_version, kind, namespace)
        except ApiError as e:
            if e.status != 404:
                raise
            return []
        return [{**o, "apiVersion": api_version, "kind": kind} for o in items]

    async def got(ref: ObjectRef) -> list[Obj]:
        try:
            live = await client.get(ref.api_version, ref.kind, ref.name)
        except ApiError as e:
            if e.status != 404:
                raise
            return []
        return [live] if live is not None else []

    found = await asyncio.gather(
        *(listed(*g) for g in groups), *(got(r) for r in refs if not r.namespace)
    )
    out: dict[ObjectRef, Obj] = {}
    for items in found:
        for live in items:
            ref = ObjectRef.of(live)
            if ref in wanted:
                out[ref] = live
    return out
