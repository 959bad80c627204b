"""Remove exactly what the install record says choreoctl created, in reverse order.

Rules, each for a reason: only objects recorded as ``created`` are deleted (the install
adopted the others); each delete carries the recorded uid as a precondition (an object
replaced since is someone else's); PVCs stay unless ``delete_data`` (data outlives a
reinstall); a Namespace or CRD choreoctl created goes only when nothing foreign is left
in it (deleting a namespace deletes everything inside; deleting a CRD deletes every
instance in the cluster). The record shrinks as objects go, so an interrupted uninstall
is finished by running it again.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from choreoctl.errors import ApiError, InputError, Problem, WaitTimeout
from choreoctl.install.inventory import (
    RECORD_NAME,
    Entry,
    InstallRecord,
    RecordStore,
    created_by_attempt,
)
from choreoctl.install.objects import Obj, ObjectRef
from choreoctl.install.waits import Readiness, poll_until
from choreoctl.kube.client import KubeClient
from choreoctl.topology.model import Topology

DEFERRED_KINDS = frozenset({"Namespace", "CustomResourceDefinition"})
# Objects the cluster makes by itself in every namespace, or that their owner takes along.
_IGNORED_KINDS = frozenset({"Event", "Endpoints", "EndpointSlice"})
_IGNORED_NAMES = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}


@dataclass
class UninstallResult:
    """What was deleted and what was kept, with the reason."""

    deleted: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # use keep() to add
    gone: list[str] = field(default_factory=list)  # recorded, already absent

    def keep(self, label: str, reason: str) -> None:
        """Note a kept object once (several steps may record the same object)."""
        if all(label != k for k, _ in self.kept):
            self.kept.append((label, reason))

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``-o json``."""
        return {
            "deleted": list(self.deleted),
            "kept": [{"object": o, "reason": r} for o, r in self.kept],
            "alreadyGone": list(self.gone),
        }


def _label(cluster: str, ref: ObjectRef) -> str:
    return f"{cluster}: {ref}"


def step_order(record: InstallRecord) -> list[str]:
    """Record steps in uninstall order: the reverse of the order they first ran."""
    return list(reversed(list(record.steps)))


async def _namespaced_kinds(client: KubeClient) -> list[tuple[str, str]]:
    """(apiVersion, kind) of every listable namespaced resource the server serves."""
    groups = [("", "v1")]
    for g in (await client.get_path("/apis") or {}).get("groups", []):
        groups.append((g["name"], g["preferredVersion"]["version"]))

    async def kinds(group: str, version: str) -> list[tuple[str, str]]:
        api_version = f"{group}/{version}" if group else version
        path = "/api/v1" if not group else f"/apis/{api_version}"
        try:
            found = await client.get_path(path) or {}
        except ApiError:
            return []  # an aggregated API that is down (503) holds nothing we could list
        return [
            (api_version, res["kind"])
            for res in found.get("resources", [])
            if res.get("namespaced") and "/" not in res["name"] and "list" in res.get("verbs", [])
        ]

    found = await asyncio.gather(*(kinds(g, v) for g, v in groups))
    return sorted({k for sub in found for k in sub})


def _derived(obj: Obj, kind: str) -> bool:
    meta = obj.get("metadata") or {}
    if meta.get("ownerReferences") or meta.get("deletionTimestamp"):
        return True  # its owner takes it along, or it is already on its way out
    if (kind, meta.get("name")) in _IGNORED_NAMES:
        return True
    if kind == "ConfigMap" and meta.get("name") == RECORD_NAME:
        return True
    annotations = meta.get("annotations") or {}
    return kind == "Secret" and "cert-manager.io/certificate-name" in annotations


async def foreign_objects(client: KubeClient, namespace: str) -> list[str]:
    """What is still in ``namespace`` that no owner will take along (kind/name)."""
    kinds = [k for k in await _namespaced_kinds(client) if k[1] not in _IGNORED_KINDS]

    async def one(api_version: str, kind: str) -> list[str]:
        try:
            items = await client.list(api_version, kind, namespace)
        except ApiError:
            return []
        return [f"{kind}/{o['metadata']['name']}" for o in items if not _derived(o, kind)]

    found = await asyncio.gather(*(one(a, k) for a, k in kinds))
    return sorted(x for sub in found for x in sub)


def _claim_pattern(sts: Obj) -> re.Pattern[str]:
    name = sts["metadata"]["name"]
    templates = [t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates") or []]
    alts = "|".join(re.escape(t) for t in templates) or "(?!)"
    return re.compile(rf"^(?:{alts})-{re.escape(name)}-\d+$")


async def _statefulset_claims(
    client: KubeClient, entries: Sequence[Entry]
) -> list[tuple[ObjectRef, str]]:
    """PVCs (and uids) the recorded StatefulSets made from their volumeClaimTemplates."""
    out: list[tuple[ObjectRef, str]] = []
    for e in entries:
        if e.ref.kind != "StatefulSet" or not e.created:
            continue
        live = await client.get(e.ref.api_version, e.ref.kind, e.ref.name, e.ref.namespace)
        if live is None or live["metadata"].get("uid") != e.uid:
            continue
        pattern = _claim_pattern(live)
        for pvc in await client.list("v1", "PersistentVolumeClaim", e.ref.namespace):
            if pattern.match(pvc["metadata"]["name"]):
                ref = ObjectRef.of({**pvc, "apiVersion": "v1", "kind": "PersistentVolumeClaim"})
                out.append((ref, str(pvc["metadata"].get("uid", ""))))
    return out


async def _resolve(clients: Mapping[str, KubeClient], e: Entry, since: Mapping[str, str]) -> Entry:
    """A pending entry (killed between apply and record) decided from the live object."""
    if e.uid:
        return e
    ref = e.ref
    try:
        live = await clients[e.cluster].get(
            ref.api_version, ref.kind, ref.name, ref.namespace or None
        )
    except ApiError as err:
        if err.status != 404:
            raise
        return e
    if live is None:
        return e
    meta = live["metadata"]
    began = e.planned or since.get(e.cluster, "")
    made = created_by_attempt(str(meta.get("creationTimestamp", "")), began)
    return Entry(e.cluster, ref, str(meta.get("uid", "")), made, e.origin)


class Remover:
    def __init__(
        self,
        clients: Mapping[str, KubeClient],
        result: UninstallResult,
        dry_run: bool,
        report: Callable[[str], None],
    ) -> None:
        self.clients = clients
        self.result = result
        self.dry_run = dry_run
        self.report = report
        self.done: set[tuple[str, ObjectRef]] = set()  # several steps record one object

    async def remove(self, entry: Entry) -> bool:
        """Delete one recorded object if it is still the one choreoctl created."""
        if entry.key in self.done:
            return True
        self.done.add(entry.key)
        label = _label(entry.cluster, entry.ref)
        if not entry.created:
            self.result.keep(label, "existed before choreoctl applied it")
            return False
        client = self.clients[entry.cluster]
        ref = entry.ref
        try:
            live = await client.get(ref.api_version, ref.kind, ref.name, ref.namespace or None)
        except ApiError as e:
            if e.status != 404:
                raise
            live = None  # its CRD is gone, and every instance with it
        if live is None:
            self.result.gone.append(label)
            return True
        if entry.uid and live["metadata"].get("uid") != entry.uid:
            self.result.keep(label, "replaced by another object since (uid differs)")
            return False
        if not self.dry_run:
            try:
                await client.delete_exact(
                    ref.api_version,
                    ref.kind,
                    ref.name,
                    ref.namespace or None,
                    live["metadata"]["uid"],
                )
            except ApiError as e:
                if e.status != 409:
                    raise
                self.result.keep(label, "replaced by another object meanwhile")
                return False
        self.result.deleted.append(label)
        self.report(f"{'would delete' if self.dry_run else 'deleted'} {label}")
        return True


async def run_uninstall(
    topology: Topology,
    clients: Mapping[str, KubeClient],
    *,
    delete_data: bool = False,
    dry_run: bool = False,
    report: Callable[[str], None] = lambda _m: None,
    timeout: float = 180.0,
) -> UninstallResult:
    """Uninstall what the record in the control plane cluster lists."""
    control = topology.control
    store = RecordStore(clients[control.cluster], control.namespace)
    record = await store.load()
    if record is None:
        raise InputError(
            f"no install record in namespace {control.namespace} of cluster {control.cluster}",
            hint="nothing was installed there with choreoctl (or the record was removed); "
            "check --topology and --kubeconfig/--context",
            reference="bad-input",
        )
    result = UninstallResult()
    remover = Remover(clients, result, dry_run, report)
    if not dry_run:
        record.state = "uninstalling"
        await store.save(record)
    deferred: list[Entry] = []
    # One object may be recorded by several steps (the organization): whichever step
    # created it decides.
    created = {e.key for es in record.inventory().values() for e in es if e.created}
    for step_id in step_order(record):
        rec = record.steps[step_id]
        entries = [await _resolve(clients, e, rec.since) for e in rec.objects]
        for e in entries:
            e.created = e.created or e.key in created
        # Volumes our StatefulSets claimed are our data too: remembered in the record
        # before the StatefulSet goes, so `--delete-data` can find them later.
        for cluster in sorted({e.cluster for e in entries}):
            mine = [e for e in entries if e.cluster == cluster]
            claims = [
                Entry(cluster, ref, uid, True)
                for ref, uid in await _statefulset_claims(clients[cluster], mine)
            ]
            rec.merge(claims)
            entries += [c for c in claims if c.key not in {e.key for e in entries}]
        done: list[tuple[str, ObjectRef]] = []
        for rank in sorted({e.ref.rank for e in entries}, reverse=True):
            batch = [e for e in entries if e.ref.rank == rank]
            now: list[Entry] = []
            for e in batch:
                if e.ref.kind in DEFERRED_KINDS:
                    deferred.append(e)
                elif e.ref.kind == "PersistentVolumeClaim" and not delete_data:
                    result.keep(
                        _label(e.cluster, e.ref), "a PVC: data is kept unless --delete-data"
                    )
                else:
                    now.append(e)
            handled = await asyncio.gather(*(remover.remove(e) for e in now))
            done += [e.key for e, ok in zip(now, handled, strict=True) if ok]
        if not dry_run:
            rec.drop(done)
            await store.save(record)
    # The control plane namespace holds the record: it goes last, and only when nothing
    # choreoctl created is kept (kept PVCs must stay known as choreoctl's for a later
    # `uninstall --delete-data`, and for a re-install that adopts them again).
    home = (control.cluster, ObjectRef("v1", "Namespace", "", control.namespace))
    await remove_deferred(remover, [e for e in deferred if e.key != home])
    kept = {label for label, _ in result.kept}
    left = [
        e
        for entries in record.inventory().values()
        for e in entries
        if e.created and _label(e.cluster, e.ref) in kept
    ]
    if left:
        result.keep(_label(*home), f"holds the install record of {len(left)} kept object(s)")
        if not dry_run:
            for rec in record.steps.values():
                rec.objects = [
                    e
                    for e in rec.objects
                    if e.created and (_label(e.cluster, e.ref) in kept or e.key == home)
                ]
            record.state = "uninstalled"
            await store.save(record)
    else:
        if not dry_run:
            await store.delete()
        await remove_deferred(remover, [e for e in deferred if e.key == home])
    if not dry_run:
        await wait_namespaces_gone(clients, result, timeout)
    return result


def _kept_here(found: str, namespace: str, cluster: str, kept: set[str]) -> bool:
    kind, name = found.split("/", 1)
    return f"{cluster}: {kind} {namespace}/{name}" in kept


async def remove_deferred(remover: Remover, deferred: Sequence[Entry]) -> None:
    """CRDs with no instances left, then namespaces with nothing foreign left."""
    unique = list({e.key: e for e in deferred}.values())
    for e in [e for e in unique if e.ref.kind == "CustomResourceDefinition"]:
        client = remover.clients[e.cluster]
        live = await client.get(e.ref.api_version, e.ref.kind, e.ref.name)
        if live is not None and e.created:
            spec = live["spec"]
            version = next(v["name"] for v in spec["versions"] if v.get("served", True))
            try:
                instances = await client.list(f"{spec['group']}/{version}", spec["names"]["kind"])
            except ApiError:
                instances = []
            if instances:
                remover.result.keep(
                    _label(e.cluster, e.ref),
                    f"{len(instances)} instance(s) not created by choreoctl still exist",
                )
                continue
        await remover.remove(e)
    for e in [e for e in unique if e.ref.kind == "Namespace"]:
        if e.created:
            client = remover.clients[e.cluster]
            if await client.get("v1", "Namespace", e.ref.name) is not None:
                foreign = await foreign_objects(client, e.ref.name)
                kept = {label for label, _ in remover.result.kept}
                ours = [f for f in foreign if _kept_here(f, e.ref.name, e.cluster, kept)]
                foreign = [f for f in foreign if f not in ours]
                if ours and not foreign:
                    remover.result.keep(
                        _label(e.cluster, e.ref), f"holds kept data: {', '.join(ours[:5])}"
                    )
                    continue
                if foreign:
                    shown = ", ".join(foreign[:5]) + (" …" if len(foreign) > 5 else "")
                    remover.result.keep(
                        _label(e.cluster, e.ref),
                        f"still holds objects choreoctl did not create: {shown}",
                    )
                    continue
        await remover.remove(e)


async def wait_namespaces_gone(
    clients: Mapping[str, KubeClient], result: UninstallResult, timeout: float
) -> None:
    """Wait until the deleted namespaces are finalized: a re-install right after an
    uninstall would otherwise hit "namespace is being terminated"."""
    pending = [
        (label.split(": ", 1)[0], label.rsplit(" ", 1)[1])
        for label in result.deleted
        if ": Namespace " in label
    ]
    deadline = time.monotonic() + timeout

    async def gone(cluster: str, name: str) -> Readiness:
        live = await clients[cluster].get("v1", "Namespace", name)
        if live is None:
            return Readiness(True, "gone")
        conds = (live.get("status") or {}).get("conditions") or []
        return Readiness(False, "; ".join(c.get("message", "") for c in conds) or "Terminating")

    def probe(cluster: str, name: str) -> Callable[[], Awaitable[Readiness]]:
        return lambda: gone(cluster, name)

    seen = await asyncio.gather(*(poll_until(probe(c, n), deadline) for c, n in pending))
    late = [(c, n, r) for (c, n), r in zip(pending, seen, strict=True) if not r.ready]
    if late:
        raise WaitTimeout(
            f"{len(late)} namespace(s) still terminating after {timeout:g}s",
            hint="something holds a finalizer: kubectl get ns NAME -o yaml shows which; "
            "run uninstall again once it is resolved",
            problems=tuple(
                Problem(f"last seen: {r.seen}", where=f"{c}: Namespace {n}") for c, n, r in late
            ),
        )
