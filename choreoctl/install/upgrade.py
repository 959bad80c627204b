"""``upgrade``: install the new render, then prune what it no longer contains.

An install only ever adds and updates; an upgrade (a new choreoctl version or a changed
topology) also deletes the objects the previous install created that the new render
lacks: with the same safety rules as uninstall (created by choreoctl, same uid, PVCs
kept unless ``delete_data``, namespaces only when nothing foreign is left).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from choreoctl.install.engine import EventSink
from choreoctl.install.inventory import RecordStore
from choreoctl.install.manifests import Rendered
from choreoctl.install.options import InstallOptions
from choreoctl.install.runstate import Hooks
from choreoctl.install.session import InstallResult, PreflightHook, run_install
from choreoctl.install.uninstall import DEFERRED_KINDS, Remover, UninstallResult, remove_deferred
from choreoctl.kube.client import KubeClient


@dataclass
class UpgradeResult:
    """The install part and the prune part of an upgrade."""

    install: InstallResult
    pruned: UninstallResult = field(default_factory=UninstallResult)
    previous_version: str = ""
    previous_hash: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``-o json``."""
        return {
            **self.install.as_dict(),
            "previousVersion": self.previous_version,
            "previousTopologyHash": self.previous_hash,
            "pruned": self.pruned.as_dict(),
        }


def plan_step_ids(rendered: Rendered) -> set[str]:
    """Ids of the install steps a full install of ``rendered`` has."""
    planes = {f"{p.kind.value}/{p.name}" for p in rendered.topology.planes}
    return planes | {"control", "trust", "control-ready", "environments"}


async def run_upgrade(
    rendered: Rendered,
    clients: Mapping[str, KubeClient],
    options: InstallOptions,
    on_event: EventSink,
    *,
    delete_data: bool = False,
    hooks: Hooks | None = None,
    preflight: PreflightHook | None = None,
) -> UpgradeResult:
    """Install ``rendered`` and delete recorded objects it no longer renders."""
    control = rendered.topology.control
    store = RecordStore(clients[control.cluster], control.namespace)
    before = await store.load()
    installed = await run_install(
        rendered, clients, options, on_event, hooks=hooks, preflight=preflight
    )
    result = UpgradeResult(installed)
    if before is not None:
        result.previous_version = before.version
        result.previous_hash = before.topology_hash
    if options.dry_run or options.only or options.skip:
        return result  # a partial render cannot say what is obsolete
    record = await store.load()
    if record is None:
        return result
    steps = plan_step_ids(rendered)
    wanted = {(c, r) for c, refs in rendered.refs().items() for r in refs}
    # What trust and registration recorded stays while their step is still planned (a
    # plane dropped from the topology takes its plane CR along).
    wanted |= {
        e.key
        for sid, rec in record.steps.items()
        if sid in steps
        for e in rec.objects
        if e.origin != "apply"
    }
    remover = Remover(clients, result.pruned, False, lambda _m: None)
    deferred = []
    for rec in reversed(list(record.steps.values())):
        stale = [e for e in rec.objects if e.key not in wanted]
        gone = []
        for e in sorted(stale, key=lambda e: e.ref.rank, reverse=True):
            if e.ref.kind in DEFERRED_KINDS:
                deferred.append(e)
            elif e.ref.kind == "PersistentVolumeClaim" and not delete_data:
                result.pruned.keep(f"{e.cluster}: {e.ref}", "a PVC: kept unless --delete-data")
            elif await remover.remove(e) or not e.created:
                gone.append(e.key)
        rec.drop(gone)
    await remove_deferred(remover, deferred)
    for sid in [sid for sid, rec in record.steps.items() if sid not in steps]:
        if not [e for e in record.steps[sid].objects if e.key not in wanted]:
            del record.steps[sid]
    pruned_deferred = {e.key for e in deferred}
    for rec in record.steps.values():
        rec.drop(k for k in pruned_deferred if f"{k[0]}: {k[1]}" in result.pruned.deleted)
    await store.save(record)
    return result
